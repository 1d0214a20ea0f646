"""SSH to virtualisation hosts, for onboarding and host plumbing (DESIGN §5).

Trust model: a host's key is pinned when it is onboarded. `scan_host_key` reads the key a host
presents (key exchange only, nothing is authenticated) so an operator can compare it with the
one the host shows on its console; the confirmed fingerprint is stored on the Host and every
later `open_session` must be given it. The key the server presents is checked on the transport
*before* any authentication request is sent: a host whose key changed receives no credential,
and the change is refused (`HostKeyMismatch`), never accepted. Nothing here reads or writes
``~/.ssh/known_hosts`` or talks to an SSH agent: the pinned fingerprint is the only trust
anchor and the configured private key file the only credential.

Commands are argument lists, joined with `shlex.join` into one POSIX shell command line (the
remote user's login shell must be a POSIX shell: sh, bash, dash). Put secrets in `input` or a
file (`put_file`), never in argv: argv appears in error messages and in the host's process
list. Every network step is bounded by a timeout (TCP connect, banner, key exchange,
authentication, channel opening, each command); command output is capped in memory.

Nothing here imports Django (hypervisor/ruff.toml).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import posixpath
import re
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from hypervisor.base import DriverError, TransientError

log = logging.getLogger(__name__)

#: Bytes of stdout (the first ones) and of stderr (the last ones) kept per command; the rest is
#: read and dropped so the remote command is never blocked by a full window.
MAX_OUTPUT_BYTES = 1024 * 1024
_CHUNK = 32 * 1024
_STDERR_TAIL_CHARS = 2000
_FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")

#: A command as an argument list. Not `Sequence[str]`: a str is one, and must be refused.
Argv = list[str] | tuple[str, ...]


# --- Endpoint, results, errors --------------------------------------------------------------


@dataclass(frozen=True)
class SshEndpoint:
    """Where and as whom to connect. `private_key_path` names a key file readable by the
    worker (OpenSSH or PEM format); its passphrase, if any, is given to `open_session`."""

    host: str
    port: int = 22
    username: str = "root"
    private_key_path: str = field(kw_only=True)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("SshEndpoint.host is empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"SshEndpoint.port out of range: {self.port}")
        if not self.username:
            raise ValueError("SshEndpoint.username is empty")

    @property
    def address(self) -> str:
        """host:port, with brackets around an IPv6 address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    """What a command did. `stdout` holds its first `MAX_OUTPUT_BYTES` bytes, `stderr` its
    last ones (decoded as UTF-8, invalid bytes replaced). `exit_status` is -1 when the command
    ended without reporting one (killed by a signal)."""

    exit_status: int
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class SshUnreachable(TransientError):
    """The host could not be reached over SSH in time: DNS failure, connection refused, no
    route, timeout, or the connection broke during the handshake."""

    def __init__(self, address: str, cause: str) -> None:
        super().__init__(address, cause)
        self.address = address
        self.cause = cause

    def __str__(self) -> str:
        return f"cannot reach {self.address} over SSH: {self.cause}"


class SshAuthenticationFailed(DriverError):
    """The host (whose key matched the pin) refused the client key."""


class HostKeyMismatch(DriverError):
    """The host presented a key other than the one pinned at onboarding. Nothing was sent to
    it; it is never accepted automatically."""

    def __init__(self, address: str, expected: str, presented: str) -> None:
        super().__init__(address, expected, presented)
        self.address = address
        self.expected = expected
        self.presented = presented

    def __str__(self) -> str:
        return (
            f"{self.address}: host key changed: expected {self.expected}, got {self.presented}; "
            "if the host was reinstalled, re-onboard it with the new fingerprint after "
            "verifying it out of band"
        )


class CommandFailed(DriverError):
    """`check_run`: the command exited with a non-zero status."""

    def __init__(self, address: str, argv: Argv, exit_status: int, stderr: str) -> None:
        super().__init__(address, list(argv), exit_status, stderr)
        self.address = address
        self.argv = list(argv)
        self.exit_status = exit_status
        self.stderr = stderr

    def __str__(self) -> str:
        command = shlex.join(self.argv)
        if len(command) > 200:
            command = command[:200] + "…"
        tail = self.stderr.strip()[-_STDERR_TAIL_CHARS:]
        return (
            f"{self.address}: {command} exited with status {self.exit_status}: "
            f"{tail or '(no stderr)'}"
        )


# --- Fingerprints and first contact ---------------------------------------------------------


def fingerprint(key: paramiko.PKey) -> str:
    """The key's OpenSSH fingerprint, as ``ssh-keygen -lf`` prints it: ``SHA256:`` and the
    unpadded base64 of the SHA-256 of the public key blob."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class HostKey:
    """A host's public key as it presented it: `fingerprint` (``SHA256:…``), `key_type`
    (``ssh-ed25519``…) and `key_base64` (the public key blob, as in a known_hosts line)."""

    fingerprint: str
    key_type: str
    key_base64: str

    def known_hosts_line(self, host: str, port: int = 22) -> str:
        """The OpenSSH known_hosts line pinning this key for `host`:`port` (``[host]:port``
        unless the port is 22), for clients that read such files (libvirt's libssh2
        transport)."""
        if not host or any(c in host for c in " \t\n,*?!") or not 1 <= port <= 65535:
            raise ValueError(f"not a host for a known_hosts line: {host!r}:{port}")
        name = host if port == 22 else f"[{host}]:{port}"
        return f"{name} {self.key_type} {self.key_base64}\n"


def scan_host_public_key(endpoint: SshEndpoint, timeout: float = 10.0) -> HostKey:
    """`scan_host_key`, returning the whole public key (to write the known_hosts file other
    SSH clients are pinned with) and not only its fingerprint."""
    deadline = time.monotonic() + _positive(timeout, "timeout")
    transport = _handshake(endpoint, deadline)
    try:
        key = transport.get_remote_server_key()
        return HostKey(
            fingerprint=fingerprint(key), key_type=key.get_name(), key_base64=key.get_base64()
        )
    finally:
        transport.close()


def scan_host_key(endpoint: SshEndpoint, timeout: float = 10.0) -> str:
    """First contact: run the key exchange only (no authentication, nothing is sent but the
    protocol handshake) and return the fingerprint of the host key the server presents, for
    the operator to confirm out of band before it is pinned (on the host's console:
    ``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub``). The key is the first type the host
    has in paramiko's order: ed25519, then ECDSA, then RSA; `open_session` negotiates the same
    one, so a host that later gains a preferred key type is refused until re-onboarded."""
    deadline = time.monotonic() + _positive(timeout, "timeout")
    transport = _handshake(endpoint, deadline)
    try:
        return fingerprint(transport.get_remote_server_key())
    finally:
        transport.close()


def open_session(
    endpoint: SshEndpoint,
    expected_fingerprint: str,
    *,
    connect_timeout: float = 10.0,
    passphrase: str | None = None,
) -> SshSession:
    """Connect, verify the host key against `expected_fingerprint` before authenticating, then
    authenticate with the endpoint's private key file (no agent, no other key, no password).
    `connect_timeout` bounds the whole opening (TCP, banner, key exchange, authentication).

    Raises `HostKeyMismatch` (the host received no credential), `SshUnreachable`,
    `SshAuthenticationFailed`, or `DriverError` (bad pin, unreadable key file)."""
    if not _FINGERPRINT_RE.match(expected_fingerprint or ""):
        raise DriverError(
            f"{endpoint.address}: the pinned host key fingerprint is not an OpenSSH SHA256 "
            f"fingerprint: {expected_fingerprint!r}"
        )
    deadline = time.monotonic() + _positive(connect_timeout, "connect_timeout")
    key = _load_private_key(endpoint.private_key_path, passphrase)
    transport = _handshake(endpoint, deadline)
    try:
        presented = fingerprint(transport.get_remote_server_key())
        if presented != expected_fingerprint:
            log.warning(
                "ssh %s: host key mismatch (expected %s, presented %s); refused",
                endpoint.address,
                expected_fingerprint,
                presented,
            )
            raise HostKeyMismatch(endpoint.address, expected_fingerprint, presented)
        _authenticate(transport, endpoint, key, deadline)
        transport.set_keepalive(15)
    except BaseException:
        transport.close()
        raise
    log.debug(
        "ssh %s: connected as %s, host key %s", endpoint.address, endpoint.username, presented
    )
    return SshSession(endpoint, transport, presented)


# --- The session ----------------------------------------------------------------------------


class SshSession:
    """An authenticated connection to one host. Not thread-safe: use one per worker task.
    Use as a context manager, or call `close()` (idempotent)."""

    def __init__(
        self, endpoint: SshEndpoint, transport: paramiko.Transport, host_key_fingerprint: str
    ) -> None:
        self.endpoint = endpoint
        self.host_key_fingerprint = host_key_fingerprint
        self._transport: paramiko.Transport | None = transport

    def __enter__(self) -> SshSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._transport is None

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    # Commands --------------------------------------------------------------------------------

    def run(self, argv: Argv, *, timeout: float, input: bytes | None = None) -> CommandResult:
        """Run `argv` (a list, joined with `shlex.join`: every argument reaches the command
        literally) and return its exit status and output, whatever the status. `input` is
        written to its stdin, which is then closed (closed at once when `input` is None).

        `timeout` bounds the whole call; when it expires the channel is closed and
        `TransientError` is raised. The command is also sent SIGTERM, best effort: OpenSSH
        refuses to signal a root session (privilege separation ends at a root login), so as
        root a command that ignores its closed stdout runs on. Bound long remote work on the
        host side too (``["timeout", "60", ...]``) when that matters."""
        command = _command_line(argv)
        deadline = time.monotonic() + _positive(timeout, "timeout")
        channel = self._open_channel(deadline)
        try:
            return self._run_on(channel, argv, command, timeout, deadline, input)
        finally:
            channel.close()

    def check_run(self, argv: Argv, *, timeout: float, input: bytes | None = None) -> CommandResult:
        """`run`, raising `CommandFailed` (a DriverError carrying the tail of stderr) when the
        command exits with a non-zero status."""
        result = self.run(argv, timeout=timeout, input=input)
        if result.exit_status != 0:
            raise CommandFailed(self.endpoint.address, argv, result.exit_status, result.stderr)
        return result

    def put_file(self, remote_path: str, data: bytes, *, timeout: float, mode: int = 0o644) -> None:
        """Write `data` to the absolute `remote_path` over SFTP, atomically: a temporary file
        beside it gets `mode` before any byte is written, then is renamed over `remote_path`.
        The directory must exist (DriverError otherwise)."""
        if not remote_path.startswith("/") or "\0" in remote_path:
            raise ValueError(f"remote_path must be an absolute path: {remote_path!r}")
        if mode & ~0o7777:
            raise ValueError(f"invalid file mode: {mode:o}")
        deadline = time.monotonic() + _positive(timeout, "timeout")
        channel = self._open_channel(deadline)
        where = f"{self.endpoint.address}: put_file {remote_path}"
        temporary = posixpath.join(
            posixpath.dirname(remote_path),
            f".{posixpath.basename(remote_path)}.{secrets.token_hex(6)}.tmp",
        )
        watchdog = _Watchdog(_remaining(deadline), channel.close)
        try:
            with watchdog:
                channel.settimeout(_remaining(deadline))
                channel.invoke_subsystem("sftp")
                sftp = paramiko.SFTPClient(channel)
                try:
                    _sftp_write(sftp, temporary, remote_path, data, mode)
                finally:
                    sftp.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if watchdog.fired or isinstance(exc, TimeoutError):
                raise TransientError(f"{where}: timed out after {timeout:g} s") from exc
            if isinstance(exc, OSError) and exc.errno is not None:
                raise DriverError(f"{where}: {exc.strerror or exc}") from exc
            if self._transport is None or not self._transport.is_active():
                raise TransientError(f"{where}: connection lost ({exc})") from exc
            raise DriverError(f"{where}: {exc}") from exc
        finally:
            channel.close()
        if watchdog.fired:
            raise TransientError(f"{where}: timed out after {timeout:g} s")

    # Internals -------------------------------------------------------------------------------

    def _open_channel(self, deadline: float) -> paramiko.Channel:
        transport = self._transport
        if transport is None:
            raise DriverError(f"{self.endpoint.address}: the SSH session is closed")
        if not transport.is_active():
            raise TransientError(f"{self.endpoint.address}: the SSH connection was lost")
        try:
            return transport.open_session(timeout=_remaining(deadline))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransientError(
                f"{self.endpoint.address}: cannot open an SSH channel: {exc}"
            ) from exc

    def _run_on(
        self,
        channel: paramiko.Channel,
        argv: Argv,
        command: str,
        timeout: float,
        deadline: float,
        input: bytes | None,
    ) -> CommandResult:
        name = argv[0]
        started = time.monotonic()

        def timed_out() -> TransientError:
            _send_signal(channel, "TERM")
            channel.close()
            log.info("ssh %s: %s timed out after %g s", self.endpoint.address, name, timeout)
            return TransientError(
                f"{self.endpoint.address}: {name} timed out after {timeout:g} s (channel closed)"
            )

        # exec_command waits for the server's answer without a timeout of its own: a watchdog
        # closes the channel at the deadline, which wakes it up.
        watchdog = _Watchdog(_remaining(deadline), channel.close)
        try:
            with watchdog:
                channel.exec_command(command)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if watchdog.fired:
                raise timed_out() from exc
            raise TransientError(f"{self.endpoint.address}: cannot run {name}: {exc}") from exc
        if watchdog.fired:
            raise timed_out()

        stdout = _Capture(keep="head")
        stderr = _Capture(keep="tail")
        pending = memoryview(input) if input else None
        try:
            channel.settimeout(max(_remaining(deadline), 0.001))
            if pending is None:
                channel.shutdown_write()
            while True:
                while channel.recv_ready():
                    stdout.add(channel.recv(_CHUNK))
                while channel.recv_stderr_ready():
                    stderr.add(channel.recv_stderr(_CHUNK))
                sent = False
                if pending is not None and channel.send_ready():
                    pending = pending[channel.send(pending[:_CHUNK]) :]
                    sent = True
                    if not pending:
                        channel.shutdown_write()
                        pending = None
                drained = not channel.recv_ready() and not channel.recv_stderr_ready()
                if drained and (
                    channel.closed or (channel.eof_received and channel.exit_status_ready())
                ):
                    break
                remaining = _remaining(deadline)
                if remaining <= 0:
                    raise timed_out()
                if sent:  # the window may have room for more: no waiting
                    continue
                if channel.eof_received:  # the select pipe stays readable after EOF
                    channel.status_event.wait(min(remaining, 0.1))
                else:
                    select.select([channel], [], [], min(remaining, 0.02 if pending else 0.5))
        except TimeoutError as exc:  # a send or recv hit the channel timeout
            raise timed_out() from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransientError(
                f"{self.endpoint.address}: connection lost while running {name}: {exc}"
            ) from exc

        exit_status = channel.recv_exit_status() if channel.exit_status_ready() else -1
        log.debug(
            "ssh %s: %s exited %d in %.3f s",
            self.endpoint.address,
            name,
            exit_status,
            time.monotonic() - started,
        )
        return CommandResult(
            exit_status=exit_status,
            stdout=stdout.text(),
            stderr=stderr.text(),
            stdout_truncated=stdout.truncated,
            stderr_truncated=stderr.truncated,
        )


# --- Helpers --------------------------------------------------------------------------------


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()


def _command_line(argv: Argv) -> str:
    """One POSIX shell command line from an argument list; a raw string is refused."""
    if not isinstance(argv, list | tuple):
        raise TypeError(
            f"argv must be a list of strings, not a command line ({type(argv).__name__})"
        )
    if not argv:
        raise ValueError("argv is empty")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"argv items must be str, got {type(arg).__name__}")
        if "\0" in arg:
            raise ValueError("an argument contains a NUL byte")
    return shlex.join(argv)


def _load_private_key(path: str, passphrase: str | None) -> paramiko.PKey:
    """Load the client key. Error messages name the file and the reason, never the passphrase."""
    try:
        password = passphrase.encode("utf-8") if passphrase is not None else None
        return paramiko.PKey.from_path(path, password=password)
    except OSError as exc:
        raise DriverError(
            f"cannot read the SSH private key {path}: {exc.strerror or exc}"
        ) from None
    except (ValueError, TypeError, paramiko.SSHException) as exc:
        # cryptography's messages ("Bad decrypt", "Key is password-protected…") are fixed
        # strings; the exception is not chained so nothing else travels with it.
        raise DriverError(f"cannot load the SSH private key {path}: {exc}") from None


def _handshake(endpoint: SshEndpoint, deadline: float) -> paramiko.Transport:
    """TCP connection and SSH key exchange, bounded by `deadline`; no authentication."""
    address = endpoint.address
    try:
        sock = socket.create_connection(
            (endpoint.host, endpoint.port), timeout=max(_remaining(deadline), 0.001)
        )
    except socket.gaierror as exc:
        raise SshUnreachable(address, f"name resolution failed: {exc.strerror or exc}") from exc
    except TimeoutError as exc:
        raise SshUnreachable(address, "TCP connection timed out") from exc
    except OSError as exc:
        raise SshUnreachable(address, exc.strerror or str(exc)) from exc

    transport = paramiko.Transport(sock)
    remaining = max(_remaining(deadline), 0.001)
    # paramiko's own banner timeout expires first, so a silent server ends its reader thread
    # cleanly ("Error reading SSH protocol banner") rather than by the socket being closed.
    transport.banner_timeout = remaining * 0.9
    transport.handshake_timeout = remaining
    try:
        transport.start_client(timeout=remaining)
    except paramiko.IncompatiblePeer as exc:
        transport.close()
        raise DriverError(f"{address}: no SSH algorithm in common: {exc}") from exc
    except (OSError, EOFError, paramiko.SSHException) as exc:
        transport.close()
        if _remaining(deadline) <= 0:
            raise SshUnreachable(address, "SSH handshake timed out") from exc
        raise SshUnreachable(address, f"SSH handshake failed: {exc}") from exc
    if not (transport.is_active() and transport.initial_kex_done):
        transport.close()  # start_client returns silently when its timeout expires
        raise SshUnreachable(address, "SSH handshake timed out")
    return transport


def _authenticate(
    transport: paramiko.Transport, endpoint: SshEndpoint, key: paramiko.PKey, deadline: float
) -> None:
    remaining = _remaining(deadline)
    if remaining <= 0:
        raise SshUnreachable(endpoint.address, "timed out before authentication")
    transport.auth_timeout = remaining
    who = f"{endpoint.username}@{endpoint.address}"
    try:
        transport.auth_publickey(endpoint.username, key)
    except paramiko.AuthenticationException as exc:
        if _remaining(deadline) <= 0:
            raise SshUnreachable(endpoint.address, "authentication timed out") from exc
        raise SshAuthenticationFailed(
            f"{who} refused the client key {fingerprint(key)} ({endpoint.private_key_path}): {exc}"
        ) from exc
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise SshUnreachable(
            endpoint.address, f"connection lost during authentication: {exc}"
        ) from exc
    if not transport.is_authenticated():
        raise SshAuthenticationFailed(f"{who} requires further authentication methods")


def _send_signal(channel: paramiko.Channel, name: str) -> None:
    """Best effort: an RFC 4254 §6.9 "signal" request. OpenSSH ≥ 7.8 delivers it to the
    command's process group, except in root sessions (it logs "session signalling requires
    privilege separation"). paramiko has no public call for it."""
    try:
        if channel.closed:
            return
        message = paramiko.Message()
        message.add_byte(cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string(name)
        channel.transport._send_user_message(message)
    except Exception:  # best effort; the channel is closed next anyway
        log.debug("ssh: could not send SIG%s", name, exc_info=True)


def _sftp_write(
    sftp: paramiko.SFTPClient, temporary: str, remote_path: str, data: bytes, mode: int
) -> None:
    try:
        with sftp.open(temporary, "wbx") as handle:
            handle.chmod(mode)  # before any byte is written
            handle.set_pipelined(True)
            handle.write(data)
        sftp.posix_rename(temporary, remote_path)
    except BaseException:
        try:
            sftp.remove(temporary)
        except Exception:  # best effort; it may not exist
            log.debug("ssh: could not remove %s", temporary, exc_info=True)
        raise


class _Capture:
    """A bounded output buffer keeping the head or the tail of a stream."""

    def __init__(self, keep: str, limit: int = MAX_OUTPUT_BYTES) -> None:
        self.keep = keep
        self.limit = limit
        self.buffer = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        if self.keep == "head":
            room = self.limit - len(self.buffer)
            if len(chunk) > room:
                self.truncated = True
            self.buffer += chunk[: max(room, 0)]
        else:
            self.buffer += chunk
            excess = len(self.buffer) - self.limit
            if excess > 0:
                self.truncated = True
                del self.buffer[:excess]

    def text(self) -> str:
        return self.buffer.decode("utf-8", errors="replace")


class _Watchdog:
    """Run `action` (closing a channel) if the block is still running after `seconds`: bounds
    paramiko calls that wait without a timeout of their own."""

    def __init__(self, seconds: float, action: Callable[[], Any]) -> None:
        self.fired = False
        self._action = action
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        try:
            self._action()
        except Exception:  # the waiting thread reports the timeout
            log.debug("ssh: watchdog action failed", exc_info=True)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
