"""libvirt connection URIs: which transport a URI uses, and the URI that pins an SSH channel.

libvirt's `ssh` transport (``qemu+ssh://``) runs the system's OpenSSH client, which ignores
libvirt's ``known_hosts`` parameter and trusts the invoking user's ``~/.ssh/known_hosts``
(measured with libvirt 9.0: a correct ``known_hosts=`` file is not read and the connection
fails with "Host key verification failed"). Its in-process transports, ``libssh`` and
``libssh2``, read the file they are given and refuse a host whose key differs
(``known_hosts_verify=normal``: an unknown key would need an interactive callback, which we
never provide, so it is refused too). We use ``libssh2``: with ``libssh`` (libvirt 9.0,
libssh 0.10 on Debian 12), reading a libvirt stream (a console log, a volume download) while
the event loop thread runs crashed the process with a segfault, in 2 of 8 and 3 of 7 runs
of 30-60 downloads each; the same runs over ``libssh2`` passed 19 of 19 (docs/decisions.md).
So a host registered as ``qemu+ssh://user@host/system`` is reached through
``qemu+libssh2://`` with a known_hosts file written from the pinned key, the control plane's
key file and public-key authentication only (`pinned_ssh_uri`).

Nothing here imports Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

#: URI parameters the control plane sets itself on an SSH channel: an operator's URI must not.
PINNING_PARAMS = frozenset(
    {"known_hosts", "known_hosts_verify", "keyfile", "sshauth", "no_verify", "command", "no_tty"}
)


@dataclass(frozen=True)
class LibvirtUri:
    """A parsed ``driver[+transport]://[user@][host][:port]/path[?params]``."""

    driver: str
    transport: str  # "" when none is written
    username: str
    host: str
    port: int | None
    path: str
    params: tuple[tuple[str, str], ...]

    @property
    def is_local(self) -> bool:
        """No network: the local daemon's Unix socket, or an in-process driver."""
        return self.transport in ("", "unix") and not self.host

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


def parse(uri: str) -> LibvirtUri:
    """ValueError when `uri` is not a libvirt URI."""
    if any(c in uri for c in "\0\n\r\t "):
        raise ValueError("a libvirt URI has no whitespace or control characters")
    parts = urlsplit(uri)
    if not parts.scheme or "://" not in uri:
        raise ValueError("not a URI (driver[+transport]://[user@][host][:port]/path)")
    driver, _, transport = parts.scheme.partition("+")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    return LibvirtUri(
        driver=driver,
        transport=transport,
        username=parts.username or "",
        host=parts.hostname or "",
        port=port,
        path=parts.path,
        params=tuple(parse_qsl(parts.query, keep_blank_values=True)),
    )


def pinned_ssh_uri(uri: str, *, username: str, known_hosts_path: str, keyfile: str) -> str:
    """The URI that reaches the host of the ``qemu+ssh://`` `uri` through libvirt's libssh2
    transport, trusting only the key in `known_hosts_path` and authenticating as `username`
    with the private key `keyfile` only (no agent, no password)."""
    parsed = parse(uri)
    if parsed.transport != "ssh" or not parsed.host:
        raise ValueError(f"not a qemu+ssh URI with a host: {uri!r}")
    kept = [(k, v) for k, v in parsed.params if k not in PINNING_PARAMS]
    params = [
        *kept,
        ("known_hosts", known_hosts_path),
        ("known_hosts_verify", "normal"),
        ("sshauth", "privkey"),
        ("keyfile", keyfile),
    ]
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    netloc = f"{quote(parsed.username or username, safe='')}@{host}"
    if parsed.port is not None:
        netloc += f":{parsed.port}"
    return urlunsplit(
        (f"{parsed.driver}+libssh2", netloc, parsed.path, urlencode(params, safe="/"), "")
    )
