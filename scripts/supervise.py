"""Run Andromède's processes in the foreground and stop them all together.

Started by `make run`: a private Redis (unless CELERY_BROKER_URL is set), the API server
(gunicorn), a Celery worker and Celery beat. Ctrl-C (SIGINT) or SIGTERM stops every process
gracefully, then forcefully after a grace period; if one process dies, the others are stopped
too and the exit status says so.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
VAR = Path(os.environ.get("ANDROMEDE_VAR_DIR", ROOT / "var"))
RUN_DIR = VAR / "run"
BIND = os.environ.get("ANDROMEDE_BIND", "127.0.0.1:8000")
GRACE_SECONDS = 15
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def commands() -> dict[str, list[str]]:
    procs: dict[str, list[str]] = {}
    if not os.environ.get("CELERY_BROKER_URL"):
        procs["redis"] = [
            "redis-server", "--port", "0", "--unixsocket", str(RUN_DIR / "redis.sock"),
            "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", str(RUN_DIR),
            "--loglevel", "warning",
        ]  # fmt: skip
    procs["api"] = [
        # gthread: a slow client (an image upload streaming for minutes, a slow header)
        # holds one of 2 x 16 threads, not a whole process, and the worker's heartbeat (the
        # timeout) keeps running while it does (review M7). Production puts a buffering
        # reverse proxy in front (docs/operations.md).
        str(VENV_BIN / "gunicorn"), "iaas.wsgi", "--bind", BIND, "--workers", "2",
        "--worker-class", "gthread", "--threads", "16", "--timeout", "120",
        "--graceful-timeout", "10", "--keep-alive", "5", "--limit-request-line", "8190",
        "--limit-request-fields", "100", "--access-logfile", "-",
    ]  # fmt: skip
    # One worker serves the control queue and the local host's queue (DESIGN §4).
    queues = f"control,host.{os.environ.get('ANDROMEDE_LOCAL_HOST_NAME', 'local')}"
    procs["worker"] = [
        str(VENV_BIN / "celery"), "-A", "iaas", "worker", "--queues", queues,
        "--concurrency", "2", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    procs["beat"] = [
        str(VENV_BIN / "celery"), "-A", "iaas", "beat", "--loglevel", "INFO",
        "--schedule", str(VAR / "celerybeat-schedule"),
    ]  # fmt: skip
    return procs


def env_for(name: str, env: dict[str, str]) -> dict[str, str]:
    """The API process (internet-facing) is not even told where the SSH key is, and may not
    reach hypervisors (M11; iaas/wsgi.py enforces it too): workers onboard hosts and push
    consoles."""
    if name != "api":
        return env
    # Nor where OVN's northbound database is: only control workers write it (issue 10).
    hidden = {"ANDROMEDE_SSH_PRIVATE_KEY", "ANDROMEDE_OVN_NB_REMOTE", "ANDROMEDE_OVN_SB_REMOTE"}
    api_env = {k: v for k, v in env.items() if k not in hidden}
    api_env["ANDROMEDE_HYPERVISOR_ACCESS"] = "0"
    return api_env


def _die_with_parent() -> None:
    """In each child: if this supervisor dies without stopping it (SIGKILL, a closed
    terminal), the kernel sends the child SIGTERM, so nothing is left running."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_ready(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def main() -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    running: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    for name, argv in commands().items():
        # Each child gets its own process group, so our Ctrl-C handling decides the order.
        running[name] = subprocess.Popen(  # noqa: S603 - fixed argv built above
            argv, cwd=ROOT, env=env_for(name, env), start_new_session=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        if name == "redis":
            time.sleep(0.3)

    base = f"http://{BIND}"
    if wait_ready(f"{base}/readyz", time.monotonic() + 60):
        print(
            f"\nAndromède is up:\n  API        {base}/api/v1/\n  API docs   {base}/api/docs/\n"
            f"  portal     {base}/\n  operators  {base}/admin/\n"
            "Demo credentials were printed above when first created "
            "(new ones: make reset-demo).\nPress Ctrl-C to stop.\n",
            flush=True,
        )
    else:
        print(f"Andromède did not become ready; see {base}/readyz", file=sys.stderr, flush=True)

    exit_code = 0
    while not stopping:
        for name, proc in running.items():
            if proc.poll() is not None:
                print(f"{name} exited with status {proc.returncode}; stopping", file=sys.stderr)
                exit_code = 1
                stopping = True
                break
        time.sleep(0.5)

    print("stopping…", file=sys.stderr, flush=True)
    for name in ["api", "beat", "worker", "redis"]:
        child = running.get(name)
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
