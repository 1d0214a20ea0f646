"""The connection to OVN's northbound database, one per worker process (DESIGN §7).

Only control workers write the NB (issue 10 item 8): the tasks of network.tasks run on the
`control` queue; nothing in the API process or a host's worker calls this.
"""

from __future__ import annotations

import threading

from django.conf import settings

from hypervisor.base import DriverError
from hypervisor.ovn.northbound import Northbound

_lock = threading.Lock()
_connections: dict[tuple[str, str], Northbound] = {}


class NotConfigured(DriverError):
    """settings.OVN_NB_REMOTE is empty: networks are kept as rows, nothing is realised."""


def northbound() -> Northbound:
    """The process's connection to settings.OVN_NB_REMOTE, opened on first use (it
    reconnects by itself; every call on it is bounded by settings.OVN_TIMEOUT_SECONDS)."""
    remote = settings.OVN_NB_REMOTE
    if not remote:
        raise NotConfigured("no OVN northbound database is configured (ANDROMEDE_OVN_NB_REMOTE)")
    key = (remote, settings.OVN_OWNER)
    with _lock:
        found = _connections.get(key)
        if found is None:
            found = Northbound(
                remote,
                owner=settings.OVN_OWNER,
                timeout=settings.OVN_TIMEOUT_SECONDS,
                private_key=settings.OVN_NB_PRIVATE_KEY or None,
                certificate=settings.OVN_NB_CERTIFICATE or None,
                ca_cert=settings.OVN_NB_CA_CERT or None,
            )
            _connections[key] = found
        return found


def close_all() -> None:
    """Close every connection (tests, and a worker shutting down)."""
    with _lock:
        connections = list(_connections.values())
        _connections.clear()
    for connection in connections:
        connection.close()
