"""Opening an OVSDB connection with a deadline.

ovsdbapp's own helpers fetch the schema with blocking calls that have no timeout (a server
that accepts the connection and never answers, a stopped process, would hang the worker),
so the schema is fetched here under a deadline, then the IDL's first full dump is awaited
under the same deadline. Errors are the project's: `TransientError` when the server cannot
be reached or answers too slowly.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any

import ovs.jsonrpc
import ovs.poller
import ovs.stream
from ovs.db import idl as ovs_idl
from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend.ovs_idl import connection, idlutils

from hypervisor.base import DriverError, TransientError

SCHEMA = "OVN_Northbound"
NAMED_TABLES = (
    "Logical_Switch",
    "Logical_Switch_Port",
    "Port_Group",
    "Logical_Router",
    "Logical_Router_Port",
)


def configure_ssl(private_key: str | None, certificate: str | None, ca_cert: str | None) -> None:
    """OVS's Python streams keep one SSL configuration per process (class attributes)."""
    if not (private_key and certificate and ca_cert):
        raise DriverError("an ssl: remote needs private_key, certificate and ca_cert")
    ovs.stream.Stream.ssl_set_private_key_file(private_key)
    ovs.stream.Stream.ssl_set_certificate_file(certificate)
    ovs.stream.Stream.ssl_set_ca_cert_file(ca_cert)


def fetch_schema(remote: str, deadline: float) -> dict[str, Any]:
    """The server's schema (JSON), asked with `get_schema`, before `deadline` (monotonic)."""
    error, stream = ovs.stream.Stream.open_block(
        ovs.stream.Stream.open(remote), _remaining_ms(deadline)
    )
    if error:
        raise TransientError(f"OVN NB {remote}: cannot connect: {os.strerror(error)}")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        request = ovs.jsonrpc.Message.create_request("get_schema", [SCHEMA])
        error = rpc.send(request)
        while not error:
            rpc.run()
            error, reply = rpc.recv()
            if error == errno.EAGAIN:
                error = 0
                if time.monotonic() >= deadline:
                    raise TransientError(f"OVN NB {remote}: no schema within the timeout")
                poller = ovs.poller.Poller()
                rpc.wait(poller)
                rpc.recv_wait(poller)
                poller.timer_wait(_remaining_ms(deadline))
                poller.block()
                continue
            if reply is not None and reply.id == request.id:
                if reply.type != ovs.jsonrpc.Message.T_REPLY:
                    raise DriverError(f"OVN NB {remote}: get_schema refused: {reply.error}")
                result: dict[str, Any] = reply.result
                return result
        raise TransientError(f"OVN NB {remote}: connection lost: {os.strerror(error)}")
    finally:
        rpc.close()


def open_connection(remote: str, timeout: float) -> connection.Connection:
    """A started ovsdbapp `Connection` whose IDL replica holds the whole NB database, or
    TransientError within about `timeout` seconds."""
    deadline = time.monotonic() + timeout
    helper = idlutils.create_schema_helper(fetch_schema(remote, deadline))
    helper.register_all()
    # The inactivity probe (off by default on unix sockets) is what unblocks the IDL thread
    # when the server stops answering without closing the socket (a stopped process).
    probe_ms = max(5000, int(timeout * 1000))
    idl = connection.OvsdbIdl(remote, helper, probe_interval=probe_ms)
    for table in NAMED_TABLES:
        # Looked up by name on every call: an index, not a scan of thousands of ports.
        idl.tables[table].rows.index_create("name").add_column("name")
    conn = connection.Connection(idl=idl, timeout=max(0.1, deadline - time.monotonic()))
    try:
        conn.start()
    except ovsdbapp_exceptions.TimeoutException as exc:
        idl.close()
        raise TransientError(f"OVN NB {remote}: no database dump within {timeout} s") from exc
    conn.timeout = timeout
    return conn


def is_monitoring(idl: ovs_idl.Idl) -> bool:
    """Connected and in sync (the IDL reconnects by itself after the server comes back)."""
    return bool(idl._session.is_connected() and idl.state == idl.IDL_S_MONITORING)


def _remaining_ms(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))
