"""Which libvirt URIs a host may have (M6), and the URI a worker really connects with.

Allowed: the local daemon without any network (``qemu:///system``, ``qemu+unix://…``: the
embedded single-machine default); ``qemu+ssh://user@host[:port]/system``, whose channel is
pinned to the host key confirmed at onboarding (hypervisor/libvirt/uri.py says how); and
``qemu+tls://host/system`` with certificate verification on. Refused: ``qemu+tcp`` and any
other transport without authentication, ``qemu://host/…`` (say ``qemu+tls`` explicitly),
parameters that turn verification off, and libvirt's in-process fake (``test:///…``) unless
the tests turned on ALLOW_TEST_HYPERVISOR.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings

from hypervisor.base import DriverError
from hypervisor.libvirt import uri as libvirt_uri
from hypervisor.ssh import HostKey
from iaas.errors import InvalidRequest

_SSH_PARAMS = frozenset({"socket", "mode", "proxy", "netcat", "name"})
_TLS_PARAMS = frozenset({"pkipath", "tls_priority", "name", "no_verify"})
_LOCAL_PARAMS = frozenset({"socket", "mode"})


def _refuse(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="libvirt_uri_refused", details={"libvirt_uri": [message]})


def check_libvirt_uri(uri: str, *, ssh_host: str, ssh_port: int, ssh_username: str) -> None:
    """InvalidRequest (400 `libvirt_uri_refused`) unless `uri` is one a host may have."""
    try:
        parsed = libvirt_uri.parse(uri)
    except ValueError as exc:
        raise _refuse(f"Not a libvirt URI: {exc}.") from None
    names = {name for name, _value in parsed.params}
    if parsed.driver == "test":
        if not settings.ALLOW_TEST_HYPERVISOR or not parsed.is_local:
            raise _refuse(
                "libvirt's test driver is a fake hypervisor for the test suite, not a host."
            )
        return
    if parsed.driver != "qemu":
        raise _refuse("Andromède drives QEMU hosts: the URI starts with qemu.")
    if parsed.transport == "tcp":
        raise _refuse(
            "qemu+tcp is refused: libvirt over plain TCP is neither authenticated nor "
            "encrypted. Use qemu+ssh://user@host/system (pinned to the host key) or "
            "qemu+tls://host/system."
        )
    if parsed.transport == "" and parsed.host:
        raise _refuse("Say which transport reaches the host: qemu+ssh://… or qemu+tls://….")
    if parsed.is_local:
        if names - _LOCAL_PARAMS:
            raise _refuse(f"Unexpected parameters for the local daemon: {sorted(names)}.")
        if ssh_host:
            raise _refuse("A local libvirt URI with an SSH host: give qemu+ssh://… instead.")
        return
    if parsed.transport == "ssh":
        if not ssh_host:
            raise _refuse("A qemu+ssh host needs ssh_host: its key is pinned at onboarding.")
        if (parsed.host, parsed.port or 22) != (ssh_host.lower(), ssh_port):
            raise _refuse(
                f"The libvirt URI reaches {parsed.host}:{parsed.port or 22}, the SSH endpoint "
                f"is {ssh_host}:{ssh_port}: the pinned key must protect both, make them agree."
            )
        if parsed.username and parsed.username != ssh_username:
            raise _refuse("The libvirt URI's user and ssh_username differ.")
        if names - _SSH_PARAMS:
            raise _refuse(
                f"Parameters {sorted(names - _SSH_PARAMS)} are not accepted: the control plane "
                "sets the key file and the known_hosts file (pinned key) itself."
            )
        return
    if parsed.transport == "tls":
        if names - _TLS_PARAMS or parsed.param("no_verify") not in (None, "0"):
            raise _refuse("A qemu+tls URI verifies the host's certificate: no no_verify.")
        return
    raise _refuse(
        f"The transport {parsed.transport!r} is not accepted: use qemu:///system (this "
        "machine), qemu+ssh://user@host/system or qemu+tls://host/system."
    )


def known_hosts_file(name: str, ssh_host: str, ssh_port: int, host_key: HostKey) -> Path:
    """The known_hosts file pinning `host_key` for the SSH endpoint, written once (0600, by
    rename) and named by the key, so a new pin is a new file and a new connection."""
    line = host_key.known_hosts_line(ssh_host, ssh_port)
    digest = hashlib.sha256(line.encode()).hexdigest()[:16]
    directory = Path(settings.HOST_KNOWN_HOSTS_DIR)
    path = directory / f"{name}-{digest}"
    if path.exists() and path.read_text(encoding="ascii") == line:
        return path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}-")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(line)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def connection_uri(
    *,
    name: str,
    libvirt_uri_text: str,
    ssh_host: str,
    ssh_port: int,
    ssh_username: str,
    host_key: HostKey | None,
) -> str:
    """The URI a worker opens for a host: the registered one, except that a ``qemu+ssh``
    channel goes through libvirt's libssh2 transport pinned to `host_key`. Only worker
    processes get here (hosts.hypervisors refuses in the API process)."""
    try:
        # A host recorded before these rules (say qemu+tcp) is refused here too, not only
        # at onboarding: re-onboard it with qemu+ssh or qemu+tls.
        check_libvirt_uri(
            libvirt_uri_text, ssh_host=ssh_host, ssh_port=ssh_port, ssh_username=ssh_username
        )
        transport = libvirt_uri.parse(libvirt_uri_text).transport
    except (InvalidRequest, ValueError) as exc:
        raise DriverError(f"host {name}: {getattr(exc, 'message', exc)}") from None
    if transport != "ssh":
        return libvirt_uri_text
    if host_key is None:
        raise DriverError(
            f"host {name}: no pinned SSH host key matches what it presents: libvirt's channel "
            "cannot be verified (re-onboard it after checking its key out of band)"
        )
    if settings.SSH_PRIVATE_KEY is None:
        raise DriverError(f"host {name}: this process holds no SSH key")
    known_hosts = known_hosts_file(name, ssh_host, ssh_port, host_key)
    return libvirt_uri.pinned_ssh_uri(
        libvirt_uri_text,
        username=ssh_username,
        known_hosts_path=str(known_hosts),
        keyfile=str(settings.SSH_PRIVATE_KEY),
    )
