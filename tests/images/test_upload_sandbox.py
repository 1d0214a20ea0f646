"""The sandbox qemu-img runs in (images/sandbox.py, review M5), seen from inside: a probe
command runs through the same function as qemu-img and reports its user, groups,
capabilities, network namespace, limits and what it can read. No mocks: real namespaces, a
real unprivileged user, a real TCP listener it must not reach."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from images import sandbox

LIMITS = sandbox.Limits(
    user="nobody", timeout_seconds=20, cpu_seconds=7, memory_bytes=512 * 1024**2
)
NOBODY = 65534


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store like the service's: a directory private to root holding the upload."""
    path = tmp_path / "store"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def upload(store: Path) -> Path:
    path = store / ".upload.part"
    path.write_bytes(b"untrusted bytes\n" * 64)
    path.chmod(0o600)
    return path


def probe(upload: Path, shell: str, limits: sandbox.Limits = LIMITS) -> sandbox.Outcome:
    return sandbox.run_on_file(["sh", "-c", shell], upload, limits)


def lines(outcome: sandbox.Outcome) -> dict[str, str]:
    assert outcome.returncode == 0, outcome
    return dict(line.split("=", 1) for line in outcome.stdout.splitlines() if "=" in line)


def test_the_command_runs_as_nobody_without_groups_or_capabilities(upload):
    seen = lines(
        probe(
            upload,
            "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); "
            "echo caps=$(grep CapEff /proc/self/status | cut -f2); "
            "echo bounding=$(grep CapBnd /proc/self/status | cut -f2); "
            "echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)",
        )
    )
    assert (seen["uid"], seen["gid"], seen["groups"]) == (str(NOBODY), str(NOBODY), str(NOBODY))
    assert int(seen["caps"], 16) == 0
    assert int(seen["bounding"], 16) == 0
    assert seen["nnp"] == "1"


def test_the_command_has_no_network(upload):
    # A real listener on this machine's loopback: reachable from here, not from the sandbox.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    watcher = threading.Thread(target=accept)
    watcher.start()
    try:
        outcome = probe(
            upload,
            f"echo netns=$(readlink /proc/self/ns/net); "
            f"echo devices=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '); "
            f"echo connect=$(python3 -c 'import socket; "
            f'socket.create_connection(("127.0.0.1", {port}), 2); print("connected")\' '
            f"2>&1 | tail -n 1)",
        )
        watcher.join()
    finally:
        listener.close()
    seen = lines(outcome)
    assert seen["netns"] != os.readlink("/proc/self/ns/net")
    assert seen["devices"] == "lo"
    assert seen["connect"] == "OSError: [Errno 101] Network is unreachable"
    assert accepted == []
    # the same connection from outside the sandbox works: the probe could have connected
    with socket.create_server(("127.0.0.1", 0)) as control:
        socket.create_connection(control.getsockname(), 2).close()


def test_the_command_sees_only_a_private_read_only_copy_of_the_file(upload, store):
    secret = store / "other-image"
    secret.write_bytes(b"another tenant's image")
    secret.chmod(0o600)
    seen = lines(
        probe(
            upload,
            "echo cwd=$(stat -c '%a %u' .); echo entries=$(ls -A); "
            "echo bytes=$(wc -c < image); "
            "echo sibling=$(cat ../other-image 2>/dev/null || echo denied); "
            "echo write=$(sh -c 'echo x >> image' 2>/dev/null && echo yes || echo no); "
            "echo create=$(sh -c 'echo x > new' 2>/dev/null && echo yes || echo no)",
        )
    )
    assert seen["cwd"] == f"500 {NOBODY}"
    assert seen["entries"] == "image"
    assert seen["bytes"] == str(upload.stat().st_size)
    assert seen["sibling"] == "denied"
    assert (seen["write"], seen["create"]) == ("no", "no")
    # afterwards: the upload is root's again, mode 0600, unchanged; no directory left
    status = upload.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (0, 0, 0o600)
    assert upload.read_bytes() == b"untrusted bytes\n" * 64
    assert sorted(p.name for p in store.iterdir()) == [".upload.part", "other-image"]


def test_the_command_runs_under_cpu_memory_and_file_size_limits(upload):
    outcome = probe(upload, "cat /proc/self/limits")
    assert outcome.returncode == 0, outcome
    limits = {line[:26].strip(): line[26:].split() for line in outcome.stdout.splitlines()[1:]}
    assert limits["Max cpu time"][:2] == ["7", "7"]
    assert limits["Max address space"][:2] == [str(512 * 1024**2)] * 2
    assert limits["Max file size"][:2] == ["0", "0"]
    assert limits["Max core file size"][:2] == ["0", "0"]


def test_a_command_overrunning_the_wall_clock_is_killed_with_its_children(upload, store):
    started = time.monotonic()
    try:
        outcome = probe(upload, "sleep 60 & wait", sandbox.Limits(timeout_seconds=1))
    except sandbox.SandboxTimeout as overran:
        message = overran.message
    else:
        pytest.fail(f"not stopped after {time.monotonic() - started:.1f} s: {outcome}")
    assert message == "it ran longer than 1 s and was stopped"
    assert time.monotonic() - started < 10
    assert sorted(p.name for p in store.iterdir()) == [".upload.part"]
    # nothing the sandbox started is still running as nobody with our marker
    leftover = [pid for pid in os.listdir("/proc") if pid.isdigit() and _runs(pid, b"sleep\x0060")]
    assert leftover == []


def _runs(pid: str, cmdline: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            mine = file.read().rstrip(b"\0") == cmdline
        return mine and os.stat(f"/proc/{pid}").st_uid == NOBODY
    except OSError:
        return False


def test_a_missing_sandbox_user_means_the_command_does_not_run(upload):
    with pytest.raises(sandbox.SandboxUnavailable):
        probe(upload, "echo ran", sandbox.Limits(user="no-such-user-m5"))


def test_a_privileged_sandbox_user_is_refused(upload):
    with pytest.raises(sandbox.SandboxUnavailable, match="privileged"):
        probe(upload, "echo ran", sandbox.Limits(user="root"))


def test_a_service_not_running_as_root_refuses_to_run_the_command_unconfined(upload):
    # The service itself run as an unprivileged user (here nobody, through setpriv): it can
    # neither change user nor make a namespace, so it must not run the command at all.
    program = (
        "from pathlib import Path\n"
        "from images import sandbox\n"
        "try:\n"
        "    sandbox.run_on_file(['sh', '-c', 'echo ran'], Path('/dev/null'), sandbox.Limits())\n"
        "except sandbox.SandboxUnavailable as exc:\n"
        "    print('refused:', exc.message)\n"
    )
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
         sys.executable, "-c", program],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "refused: the service is not running as root, so it cannot drop to an unprivileged "
        "user nor make a network namespace\n"
    )


def test_a_private_directory_that_cannot_be_made_is_a_clean_refusal_not_a_crash():
    # /proc cannot hold the private directory: an OSError inside becomes SandboxUnavailable
    # (the upload is then refused with a message), never an unexpected error (a 500).
    with pytest.raises(sandbox.SandboxUnavailable, match="could not be set up"):
        sandbox.run_on_file(["sh", "-c", "echo ran"], Path("/proc/version"), LIMITS)
