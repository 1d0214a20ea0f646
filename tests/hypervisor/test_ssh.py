"""hypervisor.ssh against a real OpenSSH server on 127.0.0.1 (tests/support/sshd.py).

Every test runs with HOME pointing to an empty directory and paramiko's known_hosts and agent
entry points booby-trapped (the `ssh_isolation` fixture)."""

from __future__ import annotations

import logging
import os
import pickle
import platform
import secrets
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from hypervisor.base import DriverError, TransientError
from hypervisor.ssh import (
    MAX_OUTPUT_BYTES,
    CommandFailed,
    HostKeyMismatch,
    SshAuthenticationFailed,
    SshEndpoint,
    SshSession,
    SshUnreachable,
    fingerprint,
    open_session,
    scan_host_key,
)
from tests.support.sshd import LocalSshd, free_port, keygen, keygen_fingerprint, ssh_endpoint_for

pytestmark = pytest.mark.usefixtures("ssh_isolation")

PRECONNECT = r"Connection (closed|reset) by 127\.0\.0\.1 port \d+ \[preauth\]"


# --- Fingerprints and first contact ---------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa", "rsa"])
def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path, key_type: str) -> None:
    private = keygen(tmp_path / f"id_{key_type}", key_type)
    key = paramiko.PKey.from_path(private)
    assert fingerprint(key) == keygen_fingerprint(Path(f"{private}.pub"))


def test_scan_host_key_returns_the_servers_fingerprint(
    local_sshd: LocalSshd, ssh_endpoint: SshEndpoint
) -> None:
    mark = local_sshd.log_mark()
    assert scan_host_key(ssh_endpoint, timeout=5) == local_sshd.host_key_fingerprint
    log = local_sshd.wait_for_log(PRECONNECT, since=mark)
    assert "userauth-request" not in log  # first contact sends no credential


def test_invalid_pin_is_refused_before_connecting() -> None:
    closed = SshEndpoint("127.0.0.1", free_port(), private_key_path="/nonexistent")
    for pin in ("", "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48", "SHA256:short"):
        with pytest.raises(DriverError, match="not an OpenSSH SHA256 fingerprint") as info:
            open_session(closed, pin)
        assert not isinstance(info.value, TransientError)


# --- Commands -------------------------------------------------------------------------------


def test_run_returns_status_and_output(ssh_session: SshSession) -> None:
    result = ssh_session.run(["uname", "-m"], timeout=5)
    assert result.exit_status == 0
    assert result.ok
    assert result.stdout == platform.machine() + "\n"
    assert result.stderr == ""
    assert not result.stdout_truncated


def test_arguments_reach_the_command_literally(ssh_session: SshSession, tmp_path: Path) -> None:
    markers = [tmp_path / f"injected{n}" for n in range(7)]
    args = [
        "a b",
        "it's",
        '"double" quotes',
        f"x; touch {markers[0]}",
        f"$(touch {markers[1]})",
        f"`touch {markers[2]}`",
        f"&& touch {markers[3]}",
        f"| touch {markers[4]}",
        f"\ntouch {markers[5]}\n",
        "$HOME ${PATH} * ~ ?",
        "",
        "-n",
        "back\\slash\ttab",
        "é ü 中 🚀",
    ]
    result = ssh_session.check_run(["printf", "%s\\0", *args], timeout=5)
    assert result.stdout.split("\0")[:-1] == args

    # The shape a host-plumbing caller uses: sh -c with data as positional parameters.
    payload = f"a b; touch {markers[6]}"
    result = ssh_session.check_run(["sh", "-c", 'printf "%s" "$0"', payload], timeout=5)
    assert result.stdout == payload

    assert [m for m in markers if m.exists()] == []


def test_input_is_written_to_stdin(ssh_session: SshSession) -> None:
    text = "première ligne\nseconde ligne\n"
    assert ssh_session.run(["cat"], timeout=5, input=text.encode()).stdout == text
    big = secrets.token_bytes(3 * 1024 * 1024)  # more than any SSH window: must stream
    result = ssh_session.check_run(["wc", "-c"], timeout=10, input=big)
    assert result.stdout.strip() == str(len(big))


def test_stdin_is_closed_without_input(ssh_session: SshSession) -> None:
    started = time.monotonic()
    assert ssh_session.run(["cat"], timeout=5).stdout == ""
    assert time.monotonic() - started < 2


def test_check_run_raises_with_stderr_on_failure(ssh_session: SshSession) -> None:
    argv = ["sh", "-c", "echo partial; echo 'disk on fire' >&2; exit 3"]
    result = ssh_session.run(argv, timeout=5)  # run never raises for a status
    assert (result.exit_status, result.stdout, result.stderr) == (3, "partial\n", "disk on fire\n")

    with pytest.raises(CommandFailed) as info:
        ssh_session.check_run(argv, timeout=5)
    assert isinstance(info.value, DriverError)
    assert not isinstance(info.value, TransientError)
    assert info.value.exit_status == 3
    assert info.value.stderr == "disk on fire\n"
    assert "exited with status 3: disk on fire" in str(info.value)

    with pytest.raises(CommandFailed, match="No such file or directory"):
        ssh_session.check_run(["ls", "/nonexistent-andromede"], timeout=5)


def test_output_is_capped(ssh_session: SshSession) -> None:
    started = time.monotonic()
    result = ssh_session.run(["head", "-c", str(3 * MAX_OUTPUT_BYTES), "/dev/zero"], timeout=10)
    assert result.exit_status == 0
    assert result.stdout_truncated
    assert len(result.stdout) == MAX_OUTPUT_BYTES  # the head is kept

    script = 'head -c 2097152 /dev/zero | tr "\\0" e >&2; echo END >&2'
    result = ssh_session.run(["sh", "-c", script], timeout=10)
    assert result.stderr_truncated
    assert len(result.stderr) == MAX_OUTPUT_BYTES
    assert result.stderr.endswith("eeeEND\n")  # the tail is kept
    assert time.monotonic() - started < 5


def _processes(argv: list[str]) -> list[int]:
    wanted = b"\0".join(a.encode() for a in argv) + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_timeout_raises_transient_error(ssh_session: SshSession) -> None:
    argv = ["sleep", f"30.{secrets.randbelow(10**6):06d}"]  # unique, to find it afterwards
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="sleep timed out after 1 s"):
            ssh_session.run(argv, timeout=1)
        assert time.monotonic() - started < 2
        # The session is still usable.
        assert ssh_session.check_run(["true"], timeout=5).ok
    finally:
        # As root, OpenSSH does not deliver the SIGTERM the driver sends: end the leftover
        # command this test started, by its process id.
        for pid in _processes(argv):
            os.kill(pid, signal.SIGTERM)


def test_invalid_argv_is_refused(ssh_session: SshSession) -> None:
    with pytest.raises(TypeError, match="not a command line"):
        ssh_session.run("uname -m", timeout=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        ssh_session.run([], timeout=5)
    with pytest.raises(ValueError, match="NUL"):
        ssh_session.run(["echo", "a\0b"], timeout=5)
    with pytest.raises(TypeError):
        ssh_session.run(["echo", b"bytes"], timeout=5)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="positive"):
        ssh_session.run(["true"], timeout=0)


# --- Files ----------------------------------------------------------------------------------


def test_put_file_writes_content_and_mode(ssh_session: SshSession, tmp_path: Path) -> None:
    target = tmp_path / "plumbing" / "bridge.conf"
    target.parent.mkdir()
    ssh_session.put_file(str(target), b"secret\n", mode=0o600, timeout=5)
    assert target.read_bytes() == b"secret\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    data = secrets.token_bytes(2 * 1024 * 1024)
    ssh_session.put_file(str(target), data, mode=0o755, timeout=10)  # replaces it
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert [p.name for p in target.parent.iterdir()] == ["bridge.conf"]  # no temporary left


def test_put_file_errors(ssh_session: SshSession, tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="No such file") as info:
        ssh_session.put_file(str(tmp_path / "missing-dir" / "f"), b"x", timeout=5)
    assert not isinstance(info.value, TransientError)
    with pytest.raises(ValueError, match="absolute"):
        ssh_session.put_file("relative/path", b"x", timeout=5)
    assert ssh_session.check_run(["true"], timeout=5).ok  # the session survived


# --- Host key pinning -----------------------------------------------------------------------


def test_changed_host_key_is_refused_before_authentication(fresh_local_sshd: LocalSshd) -> None:
    server = fresh_local_sshd
    endpoint = ssh_endpoint_for(server)
    pinned = scan_host_key(endpoint, timeout=5)

    server.restart()  # same key: the pin still holds
    with open_session(endpoint, pinned, connect_timeout=5) as session:
        assert session.host_key_fingerprint == pinned

    server.restart(new_host_key=True)  # "reinstalled"
    presented = server.host_key_fingerprint
    assert presented != pinned
    mark = server.log_mark()
    with pytest.raises(HostKeyMismatch) as info:
        open_session(endpoint, pinned, connect_timeout=5)
    error = info.value
    assert (error.expected, error.presented) == (pinned, presented)
    assert str(error) == (
        f"127.0.0.1:{server.port}: host key changed: expected {pinned}, got {presented}; "
        "if the host was reinstalled, re-onboard it with the new fingerprint after verifying "
        "it out of band"
    )
    assert isinstance(error, DriverError)
    assert not isinstance(error, TransientError)  # never retried into acceptance

    # The server saw the key exchange end, then the client leave without authenticating.
    log = server.wait_for_log(f"{PRECONNECT}|userauth-request", since=mark)
    assert "KEX done" in log
    assert "userauth-request" not in log
    assert "Accepted publickey" not in log

    # Control: with the new pin the same client authenticates, and the log shows it.
    mark = server.log_mark()
    with open_session(endpoint, presented, connect_timeout=5) as session:
        assert session.check_run(["true"], timeout=5).ok
    log = server.wait_for_log(r"Accepted publickey for \S+ from 127\.0\.0\.1", since=mark)
    assert "userauth-request" in log


# --- Authentication -------------------------------------------------------------------------


def test_wrong_client_key_is_refused(
    local_sshd: LocalSshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = keygen(tmp_path / "stranger")
    endpoint = ssh_endpoint_for(local_sshd, key=stranger)
    with pytest.raises(SshAuthenticationFailed) as info:
        open_session(endpoint, local_sshd.host_key_fingerprint, connect_timeout=5)
    message = str(info.value)
    assert f"{local_sshd.username}@127.0.0.1:{local_sshd.port} refused the client key" in message
    assert keygen_fingerprint(Path(f"{stranger}.pub")) in message


def test_passphrase_protected_key(
    fresh_local_sshd: LocalSshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    passphrase = "correct-horse-" + secrets.token_hex(8)
    key = keygen(tmp_path / "protected", passphrase=passphrase)
    fresh_local_sshd.authorize(Path(f"{key}.pub"))
    endpoint = ssh_endpoint_for(fresh_local_sshd, key=key)
    pin = fresh_local_sshd.host_key_fingerprint
    caplog.set_level(logging.DEBUG)  # every logger, paramiko's included

    with open_session(endpoint, pin, connect_timeout=5, passphrase=passphrase) as session:
        assert session.check_run(["true"], timeout=5).ok

    errors = []
    for wrong in (None, passphrase + "x"):
        with pytest.raises(DriverError, match=f"cannot load the SSH private key {key}") as info:
            open_session(endpoint, pin, connect_timeout=5, passphrase=wrong)
        assert not isinstance(info.value, SshAuthenticationFailed | TransientError)
        errors.append(info.value)

    assert caplog.records  # paramiko did log at DEBUG
    assert passphrase not in caplog.text
    assert all(passphrase not in repr(e) and e.__cause__ is None for e in errors)


def test_missing_key_file(local_sshd: LocalSshd, tmp_path: Path) -> None:
    endpoint = ssh_endpoint_for(local_sshd, key=tmp_path / "absent")
    with pytest.raises(DriverError, match="cannot read the SSH private key"):
        open_session(endpoint, local_sshd.host_key_fingerprint)


# --- Unreachable hosts ----------------------------------------------------------------------


def test_closed_port_is_unreachable(local_sshd: LocalSshd) -> None:
    port = free_port()
    endpoint = SshEndpoint("127.0.0.1", port, private_key_path=str(local_sshd.client_key_path))
    started = time.monotonic()
    with pytest.raises(SshUnreachable) as info:
        open_session(endpoint, "SHA256:" + "A" * 43, connect_timeout=2)
    assert time.monotonic() - started < 1
    assert str(info.value) == f"cannot reach 127.0.0.1:{port} over SSH: Connection refused"
    with pytest.raises(SshUnreachable, match="Connection refused"):
        scan_host_key(endpoint, timeout=2)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (no SSH banner)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_silent_server_times_out(silent_listener: int, local_sshd: LocalSshd) -> None:
    endpoint = SshEndpoint(
        "127.0.0.1", silent_listener, private_key_path=str(local_sshd.client_key_path)
    )
    for attempt in (
        lambda: scan_host_key(endpoint, timeout=1),
        lambda: open_session(endpoint, local_sshd.host_key_fingerprint, connect_timeout=1),
    ):
        started = time.monotonic()
        with pytest.raises(SshUnreachable, match=f"cannot reach 127.0.0.1:{silent_listener}"):
            attempt()
        assert 0.8 < time.monotonic() - started < 2


# --- Session lifecycle and errors -----------------------------------------------------------


def test_close_is_idempotent(local_sshd: LocalSshd, ssh_endpoint: SshEndpoint) -> None:
    session = open_session(ssh_endpoint, local_sshd.host_key_fingerprint, connect_timeout=5)
    assert not session.closed
    session.close()
    session.close()
    assert session.closed
    with pytest.raises(DriverError, match="closed"):
        session.run(["true"], timeout=5)


def test_errors_survive_pickling() -> None:
    """Celery may pickle a task's exception."""
    errors = [
        HostKeyMismatch("h:22", "SHA256:old", "SHA256:new"),
        SshUnreachable("h:22", "Connection refused"),
        SshAuthenticationFailed("root@h:22 refused the client key"),
        CommandFailed("h:22", ["ls", "/x"], 2, "ls: cannot access '/x'"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)
