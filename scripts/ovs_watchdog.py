#!/usr/bin/env python3
"""Restart Open vSwitch / OVN daemons that died without their monitor restarting them.

OVS's own ``--monitor`` restarts a daemon after a crash signal (SIGSEGV, SIGABRT...) but not
after SIGKILL (the OOM killer, ``kill -9``): then nothing restarts ovs-vswitchd and every
guest of the host is cut off. Hosts without systemd (these machines; production units have
``Restart=``) run this watchdog instead. Python standard library only: it runs on hosts.

Usage::

    ovs_watchdog.py --pidfile OWN.pid [--interval 0.5] [--restart-timeout 60] \\
        --watch PIDFILE PROGRAM COMMAND [--watch PIDFILE PROGRAM COMMAND ...]

Contract:
- every `interval` seconds, each watched daemon is alive when PIDFILE names a running
  process (not a zombie) whose /proc/<pid>/comm is PROGRAM (truncated to 15 characters, as
  the kernel does);
- a daemon is restarted when its PIDFILE exists but names no such process at two checks in a
  row (so that OVS's own monitor, which restarts a crashed daemon within ~0.1 s, goes first);
  a missing PIDFILE means it was stopped on purpose (a clean exit, SIGTERM included, removes
  it) and is left alone;
- COMMAND is split as a POSIX shell would (shlex) and run without a shell, bounded by
  `restart_timeout`; one log line per restart on stderr; if the daemon keeps dying, the
  next restart waits 1, 2, 4... up to 60 s (reset once it has stayed up for 60 s);
- runs until SIGTERM or SIGINT, then removes its own pidfile; refuses to start if the
  pidfile names another running watchdog.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MAX_BACKOFF = 60.0
STABLE_SECONDS = 60.0


@dataclass
class Watched:
    pidfile: Path
    program: str
    command: list[str]
    dead_checks: int = 0
    backoff: float = 0.0
    not_before: float = 0.0
    restarted_at: float = 0.0


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} ovs_watchdog[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def running(pidfile: Path, program: str) -> bool | None:
    """True if `pidfile` names a live `program`; False if it names anything else; None if
    there is no pidfile (the daemon was stopped on purpose, or never started)."""
    try:
        text = pidfile.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return False
    if not text.isdigit():
        return False
    try:
        comm = Path(f"/proc/{text}/comm").read_text().strip()
        # A killed process nobody has reaped yet (a zombie) still has its comm.
        state = Path(f"/proc/{text}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return comm == program[:15] and state not in ("Z", "X")


def restart(daemon: Watched, timeout: float) -> None:
    now = time.monotonic()
    if now - daemon.restarted_at > STABLE_SECONDS:
        daemon.backoff = 0.0
    log(f"{daemon.program} is not running ({daemon.pidfile}): {shlex.join(daemon.command)}")
    try:
        # The operator's own command line (argument list, no shell).
        done = subprocess.run(  # noqa: S603
            daemon.command, stdin=subprocess.DEVNULL, timeout=timeout, check=False
        )
        outcome = f"exit status {done.returncode}"
    except (OSError, subprocess.TimeoutExpired) as error:
        outcome = f"failed: {error}"
    log(f"{daemon.program} restart: {outcome}, {time.monotonic() - now:.2f} s")
    daemon.restarted_at = time.monotonic()
    daemon.not_before = daemon.restarted_at + daemon.backoff
    daemon.backoff = min(MAX_BACKOFF, max(1.0, daemon.backoff * 2))
    daemon.dead_checks = 0


def write_pidfile(path: Path) -> None:
    try:
        other = int(path.read_text().strip())
        cmdline = Path(f"/proc/{other}/cmdline").read_bytes()
        if other != os.getpid() and b"ovs_watchdog" in cmdline:
            sys.exit(f"ovs_watchdog: already running (pid {other}, {path})")
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--restart-timeout", type=float, default=60.0)
    parser.add_argument("--watch", nargs=3, action="append", required=True,
                        metavar=("PIDFILE", "PROGRAM", "COMMAND"))  # fmt: skip
    options = parser.parse_args(argv)
    watched = [Watched(Path(p), name, shlex.split(cmd)) for p, name, cmd in options.watch]

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_pidfile(options.pidfile)
    log("watching " + ", ".join(f"{w.program} ({w.pidfile})" for w in watched))
    try:
        while not stopping:
            for daemon in watched:
                state = running(daemon.pidfile, daemon.program)
                daemon.dead_checks = daemon.dead_checks + 1 if state is False else 0
                if daemon.dead_checks >= 2 and time.monotonic() >= daemon.not_before:
                    restart(daemon, options.restart_timeout)
                if stopping:
                    break
            time.sleep(options.interval)
    finally:
        options.pidfile.unlink(missing_ok=True)
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
