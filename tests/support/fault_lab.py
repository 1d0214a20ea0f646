"""Real processes for the fault tests (tests/e2e/test_faults_*.py), each started by the test,
owned by it, and stopped (then killed) on the way out whatever happened:

- `PrivatePostgres`: a PostgreSQL cluster of the test's own (initdb into a temporary
  directory, its own port and socket directory), never the machine's shared one; it can be
  crashed (`stop("immediate")`) and started again on the same data.
- `ApiServer`: the API as production runs it (gunicorn, gthread) in a subprocess, on that
  database, so a test can restart the database under it without restarting the API.
- `django_command`: `python -m tests.support.fault_lab <seed|census>` (or any manage.py
  command) in a subprocess against another database than the test's.

`python -m tests.support.fault_lab seed` makes, through the factories, a tenant with a
member's token, a zone, a host on libvirt's fake hypervisor, a flavor and a public image, and
prints them as JSON. `… census` prints what the database holds per instance (its operation,
allocation, port, audit event) so a test can check nothing was half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """The first truthy value of `check()`; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class PrivateRedis:
    """A redis-server of this test only, on a unix socket in a temporary directory, keeping
    nothing on disk; it can be stopped and started again on the same socket."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.url = f"redis+socket://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None

    def ping(self) -> bool:
        try:
            client = redis.Redis(
                unix_socket_path=str(self.socket), socket_connect_timeout=1, socket_timeout=1
            )
            return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        assert self.process is None
        self.process = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
        )  # fmt: skip
        wait_for(self.ping, 10, "the private redis to answer", every=0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        assert not self.ping()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_process(process: subprocess.Popen[Any] | None, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaped either way."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# --- PostgreSQL ---------------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, run as the `postgres` user (it refuses
    root), listening on 127.0.0.1:<a free port> and a socket in that directory. `trust`
    authentication: it is reachable from this machine only, for the test's lifetime."""

    USER = "andromede"
    DB = "andromede"

    def __init__(self) -> None:
        # Short: the socket path is limited to 107 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="andr-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://{self.USER}@127.0.0.1:{self.port}/{self.DB}"
        self.running = False

    def _as_postgres(self, *argv: str, timeout: float = 60) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def init(self) -> None:
        shutil.chown(self.directory, "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.USER, "--auth=trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self.start()
        self._as_postgres(
            str(PG_BIN / "createdb"), "-h", str(self.directory), "-p", str(self.port),
            "-U", self.USER, self.DB,
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=60"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
            "-w", "-t", "30", "start",
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: every backend killed, no checkpoint; recovery at start."""
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"
        )
        self.running = False

    def cleanup(self) -> None:
        if self.running or (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


# --- libvirtd ---------------------------------------------------------------------------------

_LIBVIRT_DIRS = {  # private directory → where the private daemon sees it
    "run": "/run/libvirt",
    "etc": "/etc/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}


class PrivateLibvirtd:
    """A libvirtd of the test's own, never the machine's: started by `unshare -m -n` with
    private directories bind-mounted over libvirt's (sockets, configuration, state, cache,
    logs) and its own network namespace (its bridges, dnsmasq and firewall rules stay
    there). Clients reach it at `uri` (its socket in the test's directory). Guests' console
    logs are plain files (stdio_handler "file": no virtlogd of its own). It can be killed
    (SIGKILL) and started again on the same state: running guests survive, as on a host.

    `cleanup()` destroys what it runs, stops it, then kills by pid whatever is still in its
    namespaces (its QEMUs and dnsmasqs), and removes the directory."""

    def __init__(self, name: str) -> None:
        # Under /var/tmp (0711): guests run as libvirt-qemu and must traverse to their disks.
        self.directory = Path(tempfile.mkdtemp(prefix=f"andr-{name}-", dir="/var/tmp"))
        self.directory.chmod(0o711)
        self.storage_root = self.directory / "storage"
        self.uri = f"qemu+unix:///system?socket={self.directory}/run/libvirt-sock"
        self.log = self.directory / "libvirtd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.namespaces: set[tuple[str, int]] = set()
        for private in _LIBVIRT_DIRS:
            (self.directory / private).mkdir()
        # The machine's QEMU settings (guests as libvirt-qemu), console logs as plain files.
        machine = Path("/etc/libvirt/qemu.conf").read_text().splitlines()
        kept = [line for line in machine if not line.strip().startswith("stdio_handler")]
        (self.directory / "etc" / "qemu.conf").write_text(
            "\n".join([*kept, 'stdio_handler = "file"', ""])
        )
        # QEMU's capabilities, probed once by the machine's libvirtd: seconds saved per start.
        with contextlib.suppress(OSError):
            shutil.copytree("/var/cache/libvirt/qemu", self.directory / "cache" / "qemu")
        mounts = "\n".join(
            f"mount --bind {self.directory / private} {target}"
            for private, target in _LIBVIRT_DIRS.items()
        )
        (self.directory / "start.sh").write_text(
            "set -e\nmount --make-rprivate /\n" + mounts + "\n"
            f'exec env LIBVIRT_LOG_OUTPUTS="3:file:{self.log}" '
            f"libvirtd -p {self.directory / 'libvirtd.pid'}\n"
        )

    def start(self, timeout: float = 60) -> None:
        assert self.process is None or self.process.poll() is not None
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--net", "sh", str(self.directory / "start.sh")],
            stdout=subprocess.DEVNULL, stderr=(self.directory / "stderr").open("ab"),
        )  # fmt: skip
        wait_for(self.answers, timeout, "the private libvirtd to answer", every=0.2)
        for kind in ("mnt", "net"):
            self.namespaces.add((kind, os.stat(f"/proc/{self.process.pid}/ns/{kind}").st_ino))

    def answers(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.tail()
        done = subprocess.run(
            ["virsh", "-c", self.uri, "version"], capture_output=True, timeout=10, check=False
        )
        return done.returncode == 0

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a crash would: no cleanup, guests left running."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def tail(self, chars: int = 3000) -> str:
        texts = []
        for path in (self.directory / "stderr", self.log):
            with contextlib.suppress(OSError):
                texts.append(path.read_text(errors="replace")[-chars:])
        return "\n".join(texts)

    def _leftovers(self) -> list[int]:
        """Pids of the processes living in this daemon's namespaces (its children)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            for kind, inode in self.namespaces:
                with contextlib.suppress(OSError):
                    if os.stat(entry / "ns" / kind).st_ino == inode:
                        pids.append(int(entry.name))
                        break
        return pids

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(Exception):
                _destroy_everything(self.uri)
            stop_process(self.process)
        for pid in self._leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not self._leftovers(), 10, "the private libvirtd's children")
        shutil.rmtree(self.directory, ignore_errors=True)


def _destroy_everything(uri: str) -> None:
    import libvirt

    conn = libvirt.open(uri)
    try:
        for domain in conn.listAllDomains():
            with contextlib.suppress(libvirt.libvirtError):
                if domain.isActive():
                    domain.destroy()
        for network in conn.listAllNetworks():
            with contextlib.suppress(libvirt.libvirtError):
                if network.isActive():
                    network.destroy()
    finally:
        conn.close()


# --- The API in a subprocess, and Django commands on another database ------------------------


def shared_database_url() -> str:
    """The URL of the database this test runs on (PostgreSQL): for the worker or API
    processes a test starts, which must see what it committed."""
    from tests.support.databases import database_url

    return database_url()


def django_env(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "DJANGO_SETTINGS_MODULE": "iaas.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_DEBUG", None)
    return env | extra


def django_command(env: dict[str, str], *argv: str, timeout: float = 120) -> str:
    """`manage.py <argv>` (or `-m tests.support.fault_lab <argv>` when argv[0] is seed or
    census) in a subprocess; its stdout. Fails with its output when it fails."""
    if argv[0] in ("seed", "census"):
        command = [sys.executable, "-m", "tests.support.fault_lab", *argv]
    else:
        command = [sys.executable, str(ROOT / "manage.py"), *argv]
    done = subprocess.run(
        command, cwd=ROOT, env=env, timeout=timeout, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class ApiServer:
    """gunicorn serving iaas.wsgi (gthread, as `make run` starts it) on a free port."""

    def __init__(self, env: dict[str, str], log: Path, *, threads: int = 8) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "iaas.wsgi", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--worker-class", "gthread", "--threads", str(threads),
                 "--timeout", "60", "--graceful-timeout", "5"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_for(self._alive, 30, "gunicorn to answer /healthz")
        except AssertionError:
            self.stop()
            raise AssertionError(f"gunicorn did not start:\n{self.tail()}") from None

    def _alive(self) -> bool:
        assert self.process.poll() is None, self.tail()
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:  # noqa: S310
                return answer.status == 200
        except OSError:
            return False

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def request(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, decoded JSON or raw text, headers) — never raises on an HTTP status."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our own server
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                     **(headers or {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                status, raw, got = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(), dict(error.headers)
        try:
            return status, json.loads(raw), got
        except ValueError:
            return status, raw.decode(errors="replace"), got

    def stop(self) -> None:
        stop_process(self.process)


def worker_subprocess(
    queue: str, env: dict[str, str], log: Path, *, slow_define: float = 0
) -> subprocess.Popen[bytes]:
    """A real Celery worker for `queue` in its own process (tests.support.slow_worker: its
    define step sleeps `slow_define` seconds, long enough to kill it there). The caller
    stops it (`stop_process`) or kills it."""
    env = env | {"ANDROMEDE_TEST_SLOW_DEFINE_SECONDS": str(slow_define) if slow_define else ""}
    argv = ["worker", "-Q", queue, "--pool", "solo", "--loglevel", "INFO",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "--hostname", f"faults-{log.stem}@%h"]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.slow_worker", *argv],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


# --- Subprocess entry points: seed and census -----------------------------------------------


def _seed(tenants: str = "1") -> dict[str, Any]:
    from django.conf import settings

    from images.models import Image
    from tests import factories
    from tests.support.callers import caller_maker

    # Nobody signs in with these users' passwords: a fast hasher saves seconds per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    make_caller = caller_maker()
    # One tenant per concurrent client: each tenant's network has a /27 of addresses.
    tokens = [make_caller(factories.tenant(f"t{n}"), "member").token for n in range(int(tenants))]
    zone = factories.zone("fr-par-1")
    factories.host("h01", zone, cpus=4096, memory_mb=4096 * 1024, disk_gb=100_000)
    factories.flavor("small")
    # The ORM: a file-less active image, enough for creates that never reach a hypervisor.
    image = Image.objects.create(
        name="andromede-test", disk_format="qcow2", status="active", visibility="public",
        size_bytes=1024, virtual_size_bytes=1024 * 1024,
    )  # fmt: skip
    return {"tokens": tokens, "image": str(image.pk)}


def _census() -> dict[str, Any]:
    from compute.models import Allocation, Instance
    from iaas.models import AuditEvent
    from network.models import Port
    from operations.models import Operation

    rows = []
    for instance in Instance.objects.all():
        key = str(instance.pk)
        rows.append(
            {
                "id": key,
                "tenant": str(instance.tenant_id),
                "name": instance.name,
                "operations": Operation.objects.filter(target_id=instance.pk).count(),
                "allocations": Allocation.objects.filter(instance_id=instance.pk).count(),
                "ports": Port.objects.filter(device_id=instance.pk).count(),
                "audit_events": AuditEvent.objects.filter(
                    action="instance.create", target_id=key
                ).count(),
            }
        )
    return {
        "instances": rows,
        "operations": Operation.objects.count(),
        "allocations": Allocation.objects.count(),
        "ports": Port.objects.count(),
    }


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iaas.settings")
    django.setup()
    commands: dict[str, Callable[..., dict[str, Any]]] = {"seed": _seed, "census": _census}
    print(json.dumps(commands[argv[0]](*argv[1:])))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    main(sys.argv[1:])
