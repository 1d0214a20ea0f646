"""`Northbound`: the control plane's intent written into OVN's northbound database.

Contracts every method keeps:
- Idempotent convergence: `ensure_*` makes the rows of one object exactly what the spec
  says (columns, member rows, ACLs, NATs, routes) in one transaction, comparing before it
  writes; a second call with the same spec changes no row (OVSDB answers "unchanged").
  `delete_*` of a missing object is a no-op.
- Ownership: every row written carries `external_ids["andromede:owner"] = owner`. A row of
  the same name that another owner (or a person) made is never changed: `SpecConflict`.
  `inventory()` lists only our rows, so two installations on one NB ignore each other.
- Bounded: connecting, and every call, raise `TransientError` within about `timeout`
  seconds when the NB is down, stopped or too slow (the IDL reconnects by itself once it is
  back). A write that timed out may still be applied later, when a stopped server resumes:
  harmless, since every write converges to a spec.
- Errors: `NotFound` when a switch, port or port group the spec names is missing;
  `InvalidSpec` (a `DriverError` and a `ValueError`) for a bad spec; other refusals are
  `DriverError`s.
- Concurrency: writers in several processes are safe. Memberships (switch ports, group
  ports) are written as OVSDB mutations, which never overwrite a concurrent writer's; the
  creation of a switch, router or DHCP_Options row (tables without a unique name) also
  bumps a counter of ours in NB_Global, verified at commit, so two workers cannot create
  the same switch twice: the loser's transaction is retried on the new state.
- Threads and processes: one long-lived connection (ovsdbapp's IDL thread) per instance;
  calls from several threads are queued and run one at a time. After a fork (Celery's
  prefork pool) the child opens its own connection on first use.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend.ovs_idl import command, connection, idlutils, transaction

from hypervisor.base import DriverError, TransientError
from hypervisor.ovn import connect
from hypervisor.ovn.acls import acls_for
from hypervisor.ovn.rows import Rows
from hypervisor.ovn.specs import (
    NbInventory,
    PortGroupSpec,
    RouterSpec,
    SwitchPortSpec,
    SwitchSpec,
    check_name,
)

T = TypeVar("T")


class _Api:
    """What ovsdbapp's Transaction needs of an API object. ovsdbapp's own Backend keeps its
    connection in a class attribute (one per process), which two instances (two owners, or
    tests) cannot share."""

    def __init__(self, conn: connection.Connection) -> None:
        self.ovsdb_connection = conn
        self.idl = conn.idl
        self.tables = conn.idl.tables


class _Fn(command.BaseCommand):
    """A transaction body: `fn(txn)` runs in the IDL thread on the current replica, and runs
    again from scratch if OVSDB answers TRY_AGAIN (a verified column changed meanwhile)."""

    def __init__(self, api: _Api, fn: Callable[[Any], Any]) -> None:
        super().__init__(api)
        self.fn = fn

    def run_idl(self, txn: Any) -> None:
        self.result = self.fn(txn)


class _Transaction(transaction.Transaction):
    """ovsdbapp's transaction, with one deadline for queueing and answer together (its own
    waits `timeout` for each, in turn)."""

    def commit(self) -> Any:
        deadline = time.monotonic() + self.timeout
        try:
            self.ovsdb_connection.txns.put(self, timeout=self.timeout)
            result = self.results.get(timeout=max(0.0, deadline - time.monotonic()))
        except (queue.Full, queue.Empty) as exc:
            raise ovsdbapp_exceptions.TimeoutException(
                commands=self.commands, timeout=self.timeout, cause="no answer"
            ) from exc
        if isinstance(result, idlutils.ExceptionResult):
            raise result.ex
        return result


class Northbound:
    """A connection to one OVN NB database on behalf of installation `owner`.

    `remote`: "unix:/path", "tcp:host:port" or "ssl:host:port" (then `private_key`,
    `certificate` and `ca_cert`, file paths; OVS keeps them per process)."""

    def __init__(
        self,
        remote: str,
        *,
        timeout: float = 10,
        owner: str,
        private_key: str | None = None,
        certificate: str | None = None,
        ca_cert: str | None = None,
    ) -> None:
        self.remote = remote
        self.timeout = float(timeout)
        self.owner = check_name(owner, "owner")
        if remote.startswith("ssl:"):
            connect.configure_ssl(private_key, certificate, ca_cert)
        self._lock = threading.Lock()
        self._conn: connection.Connection | None = None
        self._pid = 0
        self._connection()

    # --- connection ----------------------------------------------------------------------

    def _connection(self) -> connection.Connection:
        with self._lock:
            if self._conn is None or self._pid != os.getpid():
                # After a fork the parent's IDL thread does not exist here: start afresh.
                self._conn = connect.open_connection(self.remote, self.timeout)
                self._pid = os.getpid()
            return self._conn

    def close(self) -> None:
        """Stop the IDL thread and close the connection (idempotent)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.stop(timeout=self.timeout)
            conn.idl.close()

    def __enter__(self) -> Northbound:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _synced(self, deadline: float) -> connection.Connection:
        """The connection, once its IDL is connected and monitoring, before `deadline`."""
        conn = self._connection()
        while not connect.is_monitoring(conn.idl):
            if time.monotonic() >= deadline:
                raise TransientError(f"OVN NB {self.remote}: not connected")
            time.sleep(0.02)
        return conn

    def _write(self, body: Callable[[Rows], T]) -> T:
        """Run `body(rows)` as one NB transaction and return what it returned."""
        deadline = time.monotonic() + self.timeout
        conn = self._synced(deadline)
        api = _Api(conn)
        remaining = max(0.05, deadline - time.monotonic())
        txn = _Transaction(api, conn, timeout=remaining, check_error=True, log_errors=False)
        cmd = txn.add(_Fn(api, lambda t: body(Rows(conn.idl, t, self.owner))))
        try:
            txn.commit()
        except ovsdbapp_exceptions.TimeoutException as exc:
            raise TransientError(
                f"OVN NB {self.remote}: no answer within {self.timeout} s"
            ) from exc
        except DriverError:
            raise
        except RuntimeError as exc:
            text = str(exc)
            if "timed out" in text or "constraint violation" in text:
                # A concurrent writer won a unique name: the same call converges on retry.
                raise TransientError(f"OVN NB {self.remote}: {text}") from exc
            raise DriverError(f"OVN NB {self.remote}: {text}") from exc
        result: T = cmd.result
        return result

    def _read(self, body: Callable[[Rows], T]) -> T:
        """`body(rows)` on the replica, once it is in sync (a stale replica is never read)."""
        conn = self._synced(time.monotonic() + self.timeout)
        with conn.lock:
            return body(Rows(conn.idl, None, self.owner))

    # --- switches and ports --------------------------------------------------------------

    def ensure_switch(self, spec: SwitchSpec) -> None:
        """The switch exists with these external_ids (and mtu note)."""
        self._write(lambda rows: rows.ensure_switch(spec))

    def delete_switch(self, name: str) -> None:
        """The switch of ours named `name` is gone, with its ports and DHCP options."""
        self._write(lambda rows: rows.delete_switch(check_name(name)))

    def ensure_switch_port(self, spec: SwitchPortSpec) -> None:
        """The port exists on its switch (NotFound without the switch) with exactly the
        spec's addresses, port security, type, options, external_ids and DHCP options (the
        subnet's DHCP_Options row, shared, created or converged); and it is a member of
        `spec.port_groups` (NotFound for a missing group)."""
        self._write(lambda rows: rows.ensure_switch_port(spec))

    def delete_switch_port(self, name: str) -> None:
        """The port is gone (from its switch and its groups); a DHCP_Options row of ours no
        port of its switch uses any more goes too."""
        self._write(lambda rows: rows.delete_switch_port(check_name(name)))

    def switch_port_up(self, name: str) -> bool:
        """Whether ovn-controller has bound the port on a chassis (`up`, set by northd);
        NotFound for no such port of ours."""
        return self._read(lambda rows: rows.switch_port_up(check_name(name)))

    # --- security groups -----------------------------------------------------------------

    def ensure_port_group(self, spec: PortGroupSpec) -> None:
        """The group has exactly those of `spec.ports` that exist (a port created later joins
        its groups itself, `SwitchPortSpec.port_groups`: decided inside one transaction, so a
        port another writer creates meanwhile is never taken out) and exactly
        `acls_for(spec.name, spec.rules)`: other ACLs on it are removed, missing ones
        added. An empty group is created first, in its own transaction (OVN refuses ACLs
        on a group created in the same transaction); ports join with their ACLs."""
        acls = acls_for(spec.name, spec.rules)
        self._write(lambda rows: rows.create_port_group(spec))
        self._write(lambda rows: rows.converge_port_group(spec, acls))

    def delete_port_group(self, name: str) -> None:
        self._write(lambda rows: rows.delete_port_group(name))

    # --- routers -------------------------------------------------------------------------

    def ensure_router(self, spec: RouterSpec) -> None:
        """The router has exactly these ports (with gateway chassis), NATs and static
        routes; the peer switch ports are the caller's (`router_interface`)."""
        self._write(lambda rows: rows.ensure_router(spec))

    def delete_router(self, name: str) -> None:
        self._write(lambda rows: rows.delete_router(check_name(name)))

    # --- reading -------------------------------------------------------------------------

    def inventory(self) -> NbInventory:
        """Every row of ours, as specs (`PortGroupState` for groups: compare its `acls`
        with `acls_for`). A row of ours too damaged to read as a spec is listed by name in
        `unreadable` (an ensure repairs it)."""
        return self._read(lambda rows: rows.inventory())

    def wait_hv(self, timeout: float | None = None) -> None:
        """Bump `nb_cfg` and wait until every chassis has caught up (`hv_cfg`): what this
        installation wrote so far is in the hypervisors' flows. Needs ovn-northd (and the
        controllers); TransientError after `timeout` (default: the connection's)."""
        self._wait_cfg("hv_cfg", timeout)

    def wait_sb(self, timeout: float | None = None) -> None:
        """The same as `wait_hv`, up to the southbound database (northd only)."""
        self._wait_cfg("sb_cfg", timeout)

    def _wait_cfg(self, column: str, timeout: float | None) -> None:
        target = self._write(lambda rows: rows.bump_nb_cfg())
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        conn = self._connection()
        while True:
            with conn.lock:
                reached = any(
                    getattr(r, column) >= target for r in conn.idl.tables["NB_Global"].rows.values()
                )
            if reached:
                return
            if time.monotonic() >= deadline:
                raise TransientError(f"OVN NB {self.remote}: {column} did not reach {target}")
            time.sleep(0.01)
