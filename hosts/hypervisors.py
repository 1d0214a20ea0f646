"""The Django side of the hypervisor boundary: which driver and which SSH endpoint serve a
host. Everything else talks to `hypervisor.base.Hypervisor`.

Only workers (and operators' manage.py commands) reach hypervisors: in the internet-facing
API process (settings.HYPERVISOR_ACCESS off, forced by iaas/wsgi.py) every function here
refuses with `NoHypervisorAccess` before anything is opened or read (M11).
"""

from __future__ import annotations

import threading

from django.conf import settings

from hosts.libvirt_uris import connection_uri
from hosts.models import Host
from hypervisor.base import DriverError, Hypervisor
from hypervisor.ssh import HostKey, SshEndpoint, scan_host_public_key

_lock = threading.Lock()
_by_uri: dict[str, Hypervisor] = {}


class NoHypervisorAccess(DriverError):
    """This process (the API) may not reach hypervisors: ask a worker."""


def _require_access(what: str) -> None:
    if not settings.HYPERVISOR_ACCESS:
        raise NoHypervisorAccess(
            f"{what}: this process has no hypervisor access (only workers reach hosts)"
        )


def hypervisor_for_uri(uri: str) -> Hypervisor:
    """The process's driver for `uri` (a connection URI: see `hypervisor_for`): created once
    and kept, so its libvirt connection is long-lived (DESIGN §5)."""
    _require_access("libvirt")
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


def host_key_of(host: Host) -> HostKey | None:
    """The host's pinned key, or None when none is pinned (a local host)."""
    if not host.ssh_host_key_fingerprint or not host.ssh_host_key:
        return None
    key_type, _, key_base64 = host.ssh_host_key.partition(" ")
    return HostKey(host.ssh_host_key_fingerprint, key_type, key_base64)


def _pinned_key(host: Host) -> HostKey | None:
    """`host_key_of`; for a host pinned before the whole key was kept (only its fingerprint),
    the key it presents now is kept if its fingerprint is the pinned one — the pin is the
    fingerprint, so that key is the one the operator confirmed."""
    key = host_key_of(host)
    if key is not None or not host.ssh_host or not host.ssh_host_key_fingerprint:
        return key
    presented = scan_host_public_key(
        ssh_endpoint(host.ssh_host, host.ssh_port, host.ssh_username),
        timeout=settings.SSH_CONNECT_TIMEOUT_SECONDS,
    )
    if presented.fingerprint != host.ssh_host_key_fingerprint:
        return None  # connection_uri refuses: never trust a key that is not the pin
    line = f"{presented.key_type} {presented.key_base64}"
    Host.objects.filter(pk=host.pk, ssh_host_key="").update(ssh_host_key=line)
    host.ssh_host_key = line
    return presented


def hypervisor_for(host: Host) -> Hypervisor:
    """The driver of an onboarded host; a qemu+ssh host's libvirt channel trusts only the
    pinned key (hosts.libvirt_uris)."""
    _require_access(f"host {host.name}")
    return hypervisor_for_uri(
        connection_uri(
            name=host.name,
            libvirt_uri_text=host.libvirt_uri,
            ssh_host=host.ssh_host,
            ssh_port=host.ssh_port,
            ssh_username=host.ssh_username,
            host_key=_pinned_key(host),
        )
    )


def ssh_endpoint(host: str, port: int, username: str) -> SshEndpoint:
    _require_access(f"ssh {host}")
    if settings.SSH_PRIVATE_KEY is None:
        raise NoHypervisorAccess(f"ssh {host}: no SSH key is configured in this process")
    return SshEndpoint(
        host=host, port=port, username=username, private_key_path=str(settings.SSH_PRIVATE_KEY)
    )
