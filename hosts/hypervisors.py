"""The Django side of the hypervisor boundary: which driver and which SSH endpoint serve a
host. Everything else talks to `hypervisor.base.Hypervisor`."""

from __future__ import annotations

import threading

from django.conf import settings

from hosts.models import Host
from hypervisor.base import Hypervisor
from hypervisor.ssh import SshEndpoint

_lock = threading.Lock()
_by_uri: dict[str, Hypervisor] = {}


def hypervisor_for_uri(uri: str) -> Hypervisor:
    """The process's driver for `uri`: created once and kept, so its libvirt connection is
    long-lived (DESIGN §5)."""
    with _lock:
        hypervisor = _by_uri.get(uri)
        if hypervisor is None:
            from hypervisor.libvirt import LibvirtHypervisor

            hypervisor = LibvirtHypervisor(
                uri, call_timeout=settings.HYPERVISOR_CALL_TIMEOUT_SECONDS
            )
            _by_uri[uri] = hypervisor
        return hypervisor


def close_all() -> None:
    """Close every kept driver (worker shutdown; tests, where closing the last connection to
    test:///default also resets libvirt's fake hypervisor)."""
    with _lock:
        drivers = list(_by_uri.values())
        _by_uri.clear()
    for driver in drivers:
        driver.close()


def hypervisor_for(host: Host) -> Hypervisor:
    return hypervisor_for_uri(host.libvirt_uri)


def ssh_endpoint(host: str, port: int, username: str) -> SshEndpoint:
    return SshEndpoint(
        host=host, port=port, username=username, private_key_path=str(settings.SSH_PRIVATE_KEY)
    )
