"""Run a command on an untrusted file, confined (review M5).

The command (qemu-img, in practice) runs:
- with no network: a network namespace of its own holding only a loopback that is down
  (`unshare --net`), so nothing the file names can reach an NBD, SSH or HTTP server (and
  an IPC namespace of its own);
- as an unprivileged user (`setpriv`, `nobody` by default; a dedicated user is better), with no
  supplementary groups, no capabilities and no way to gain any (no_new_privs);
- in a private directory made for this run (mode 0500, owned by that user) holding only the
  file, hard-linked there (copied when a link is impossible) and readable by that user for the
  run only. The command starts inside the directory and names the file `image`; it never needs
  to traverse the directories above, which stay private to the service;
- under limits: address space and CPU time (`prlimit`), no file writes (`--fsize=0`), no core
  dumps, and a wall-clock timeout after which its whole process group is killed.

Building the confinement needs root (changing user, making a namespace). A process that is
not root cannot confine the command and refuses to run it (SandboxUnavailable) rather than
run it unconfined.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FILE_NAME = "image"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the confining tools print when they, not the command, failed.
_TOOL_PREFIXES = ("unshare:", "setpriv:", "prlimit:")
_OUTPUT_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    user: str = "nobody"
    timeout_seconds: float = 60.0
    cpu_seconds: int = 30
    memory_bytes: int = 1024**3


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


class SandboxError(Exception):
    """The confined command could not be run to its end; `message` says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SandboxUnavailable(SandboxError):
    """The confinement cannot be built on this machine (not root, a tool or the user missing,
    namespaces refused): the command was not run."""


class SandboxTimeout(SandboxError):
    """The command ran longer than the wall-clock limit and was killed."""


def _account(user: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise SandboxUnavailable(f"the sandbox user {user!r} does not exist") from exc
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise SandboxUnavailable(f"the sandbox user {user!r} is privileged")
    return entry.pw_uid, entry.pw_gid


def _tools() -> tuple[str, str, str]:
    found = [shutil.which(name, path=_PATH) for name in ("unshare", "setpriv", "prlimit")]
    unshare, setpriv, prlimit = found
    if unshare is None or setpriv is None or prlimit is None:
        raise SandboxUnavailable("unshare, setpriv and prlimit (util-linux) are needed")
    return unshare, setpriv, prlimit


@contextlib.contextmanager
def _private_copy(file: Path, uid: int, gid: int) -> Iterator[Path]:
    """A directory next to `file` (same file system, so a hard link works), private to the
    sandbox user, holding `file` as FILE_NAME readable by that user. The file's owner and mode
    are restored and the directory removed on the way out."""
    directory = Path(tempfile.mkdtemp(prefix=".inspect-", dir=file.parent))
    target = directory / FILE_NAME
    original = file.stat()
    linked = False
    try:
        try:
            os.link(file, target)
            linked = True
        except OSError:
            shutil.copyfile(file, target)
        # Readable by the sandbox's group only for this run; never writable by it.
        os.chown(target, original.st_uid if linked else 0, gid)
        os.chmod(target, 0o440)
        os.chown(directory, uid, gid)
        os.chmod(directory, 0o500)
        yield directory
    finally:
        if linked:
            os.chown(file, original.st_uid, original.st_gid)
            os.chmod(file, stat.S_IMODE(original.st_mode))
        shutil.rmtree(directory, ignore_errors=True)


def confined_command(argv: Sequence[str], limits: Limits, uid: int, gid: int) -> list[str]:
    """The command line that runs `argv` confined (see the module's docstring)."""
    unshare, setpriv, prlimit = _tools()
    return [
        unshare, "--net", "--ipc", "--",
        setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs",
        "--inh-caps=-all", "--bounding-set=-all", "--",
        prlimit, f"--as={limits.memory_bytes}", f"--cpu={limits.cpu_seconds}", "--fsize=0",
        "--core=0", "--",
        *argv,
    ]  # fmt: skip


def run_on_file(argv: Sequence[str], file: Path, limits: Limits) -> Outcome:
    """Run `argv` confined, on a private copy of `file` named FILE_NAME in its working
    directory. Returns the command's exit status and output (the command's own failure is the
    caller's to judge). SandboxUnavailable if the confinement cannot be built (the command did
    not run), SandboxTimeout if it overran `limits.timeout_seconds` (it was killed)."""
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the service is not running as root, so it cannot drop to an unprivileged user "
            "nor make a network namespace"
        )
    uid, gid = _account(limits.user)
    command = confined_command(argv, limits, uid, gid)
    try:
        returncode, stdout, stderr = _run(command, file, uid, gid, limits.timeout_seconds)
    except OSError as exc:  # the private directory or the process could not be made
        logger.error("image sandbox could not start: %s", exc)
        raise SandboxUnavailable("the sandbox could not be set up on this machine") from exc
    error_text = stderr[:_OUTPUT_LIMIT].decode("utf-8", "replace")
    if returncode != 0 and error_text.lstrip().startswith(_TOOL_PREFIXES):
        logger.error("image sandbox could not start: %s", error_text.strip()[:500])
        raise SandboxUnavailable("the sandbox could not be set up on this machine")
    return Outcome(
        returncode=returncode,
        stdout=stdout[:_OUTPUT_LIMIT].decode("utf-8", "replace"),
        stderr=error_text,
    )


def _run(
    command: list[str], file: Path, uid: int, gid: int, timeout: float
) -> tuple[int, bytes, bytes]:
    with _private_copy(file, uid, gid) as directory:
        process = subprocess.Popen(  # noqa: S603 - an argument list, no shell
            command,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": _PATH, "LC_ALL": "C"},
            start_new_session=True,  # its own process group, killed whole on timeout
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                # bounded: a process that left the group could hold the pipes open
                process.communicate(timeout=5)
            raise SandboxTimeout(f"it ran longer than {timeout:g} s and was stopped") from exc
    return process.returncode, stdout, stderr
