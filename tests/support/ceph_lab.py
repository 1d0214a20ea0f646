"""A throw-away single-node Ceph cluster for the RBD volume backend (shared/notes/ceph-lab.md):
one mon, one mgr, one memstore OSD (RAM only, about 2 GiB, no disk) and an initialised RBD
pool, started by hand from Debian's packages (scripts/setup.sh's test list), without systemd
or cephadm.

- Its state lives in a fresh ``/var/tmp/andr-ceph-XXXX`` directory: conf, keyrings, mon and
  mgr stores, logs, pid files. Clients use ``CEPH_CONF=<dir>/ceph.conf`` (`env`).
- Its monitor listens on two ports picked per run among the free ones (never Ceph's
  3300/6789), so `make run`'s cluster, a parallel test run and this one never meet; a mon
  that loses the race for a port is started again on others.
- Its daemons die with the process that started them (``PR_SET_PDEATHSIG``) unless it asks
  otherwise (`scripts/ceph.sh up`); `stop()` kills them by pid with SIGKILL (memstore: the
  data goes anyway; SIGTERM costs 5 s of OSD shutdown) and deletes the directory.

The pytest fixture `ceph_lab` starts one per session, on first use (about 10 s and 0.5 GB).

Command line (what scripts/ceph.sh runs)::

    python -m tests.support.ceph_lab up      # prints the state directory and `export CEPH_CONF=…`
    python -m tests.support.ceph_lab down DIR
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The RBD pool the lab makes, and the cephx user (``profile rbd`` on that pool only) that
#: libvirt and QEMU use: what an operator gives the control plane.
POOL = "volumes"
CLIENT = "andromede"
#: memstore's cap: the OSD's RAM grows with what is written (use small volumes).
MEMSTORE_BYTES = 2 << 30
#: Daemons the lab runs, in the order they start; each has ``run/<name>.pid``.
DAEMONS = ("mon", "mgr", "osd")
_PR_SET_PDEATHSIG = 1

_CONF = """\
[global]
fsid = {fsid}
mon initial members = a
mon host = {mon_addrs}
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 5
mon allow pool delete = true
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
mgr stats period = 1
mgr tick period = 1
run dir = {d}/run
admin socket = {d}/run/$cluster-$name.asok
log file = {d}/log/$cluster-$name.log
mon data = {d}/mon/$cluster-$id
mgr data = {d}/mgr/$cluster-$id
osd data = {d}/osd/$cluster-$id
keyring = {d}/admin.keyring
[mon]
keyring = $mon_data/keyring
[mgr]
keyring = $mgr_data/keyring
[osd]
keyring = $osd_data/keyring
osd memory target = 939524096
"""


class CephLabError(RuntimeError):
    """The lab could not be started (the message has the daemon's last log lines)."""


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now (the kernel's choice)."""
    holders = []
    try:
        for _ in range(count):
            holder = socket.socket()
            holder.bind(("127.0.0.1", 0))
            holders.append(holder)
        return [holder.getsockname()[1] for holder in holders]
    finally:
        for holder in holders:
            holder.close()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running and not a zombie (a killed daemon stays one until it is reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class CephLab:
    """The cluster described above. `start()` is bounded; `stop()` is safe after a failed or
    partial start, and twice. `tied`: the daemons die with this process."""

    def __init__(self, *, tied: bool = True, directory: Path | None = None) -> None:
        self.tied = tied
        self.directory = directory or Path(tempfile.mkdtemp(prefix="andr-ceph-", dir="/var/tmp"))
        self.directory.chmod(0o711)  # QEMU (libvirt-qemu) never reads it: libvirt passes keys
        self.mon_port = 0  # msgr v1, what libvirt and QEMU are given
        self.mon_v2_port = 0
        self.startup_seconds = 0.0
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # --- what clients need ----------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.directory / "ceph.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CEPH_CONF": str(self.conf)}

    @property
    def monitors(self) -> tuple[tuple[str, int], ...]:
        return (("127.0.0.1", self.mon_port),)

    def client_key(self, name: str = CLIENT, pool: str = POOL) -> str:
        """The cephx key (base64, as ``ceph auth get-key`` prints it) of ``client.<name>``,
        made if needed with ``profile rbd`` on `pool` only (what docs/operations.md asks an
        operator to make)."""
        self.ceph(
            "auth", "get-or-create", f"client.{name}", "mon", "profile rbd",
            "osd", f"profile rbd pool={pool}", "mgr", f"profile rbd pool={pool}",
        )  # fmt: skip
        return self.ceph("auth", "get-key", f"client.{name}").strip()

    def client_key_bytes(self, name: str = CLIENT, pool: str = POOL) -> bytes:
        """The same key as libvirt's ceph secrets hold it: the raw bytes."""
        return base64.b64decode(self.client_key(name, pool))

    # --- commands ---------------------------------------------------------------------------

    def run(
        self, *argv: str, timeout: float = 30, check: bool = True, stdin: str | None = None
    ) -> str:
        done = subprocess.run(
            argv, env=self.env, input=stdin, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise CephLabError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def ceph(self, *args: str, timeout: float = 30) -> str:
        return self.run("ceph", "--connect-timeout", "10", *args, timeout=timeout)

    def rbd(self, *args: str, timeout: float = 30) -> str:
        return self.run("rbd", *args, timeout=timeout)

    def rados_objects(self, pool: str = POOL) -> list[str]:
        """Every RADOS object of the pool (``rados ls``)."""
        return self.run("rados", "-p", pool, "ls", timeout=60).split()

    def image_prefix(self, image: str, pool: str = POOL) -> str:
        """The prefix of the RADOS objects holding `image`'s data (``rbd_data.<id>``)."""
        info = json.loads(self.rbd("info", "--format", "json", f"{pool}/{image}"))
        return str(info["block_name_prefix"])

    def images(self, pool: str = POOL) -> list[str]:
        return self.rbd("ls", pool).split()

    # --- life -------------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        started = time.monotonic()
        deadline = started + timeout
        d = self.directory
        for sub in ("run", "log", "mon/ceph-a", "mgr/ceph-x", "osd"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.mon_v2_port, self.mon_port = _free_ports(2)
            self._write_conf()
            self._keys()
            if self._start_mon(deadline):
                break
            if attempt == 2:
                raise CephLabError(f"the mon did not start: {self._log_tail('mon')}")
        self.ceph("mon", "enable-msgr2")
        self.ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *",
                  "mds", "allow *", "-o", str(d / "mgr/ceph-x/keyring"))  # fmt: skip
        self._spawn("mgr", "ceph-mgr", "-i", "x", "-f")
        self._make_osd()
        self._wait(deadline, "the OSD up and in", lambda: "1 up" in self.ceph("osd", "stat"))
        self._wait(deadline, "the mgr available", self._mgr_available)
        self.ceph("osd", "pool", "create", POOL, "8", "8", "replicated")
        self.rbd("pool", "init", POOL)
        self._wait(deadline, "every PG active+clean", self._pgs_clean)
        self.startup_seconds = time.monotonic() - started

    def _write_conf(self) -> None:
        addrs = f"[v2:127.0.0.1:{self.mon_v2_port},v1:127.0.0.1:{self.mon_port}]"
        self.conf.write_text(
            _CONF.format(
                fsid=self.fsid, mon_addrs=addrs, memstore_bytes=MEMSTORE_BYTES, d=self.directory
            )
        )

    @property
    def fsid(self) -> str:
        fsid_file = self.directory / "fsid"
        if not fsid_file.exists():
            fsid_file.write_text(str(uuid.uuid4()))
        return fsid_file.read_text().strip()

    def _keys(self) -> None:
        d = self.directory
        for stale in ("mon.keyring", "admin.keyring", "monmap"):
            (d / stale).unlink(missing_ok=True)
        shutil.rmtree(d / "mon/ceph-a", ignore_errors=True)
        (d / "mon/ceph-a").mkdir(parents=True)
        self.run("ceph-authtool", "--create-keyring", str(d / "mon.keyring"), "--gen-key",
                 "-n", "mon.", "--cap", "mon", "allow *")  # fmt: skip
        self.run("ceph-authtool", "--create-keyring", str(d / "admin.keyring"), "--gen-key",
                 "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                 "--cap", "mds", "allow *", "--cap", "mgr", "allow *")  # fmt: skip
        os.chmod(d / "admin.keyring", 0o600)
        self.run("ceph-authtool", str(d / "mon.keyring"), "--import-keyring",
                 str(d / "admin.keyring"))  # fmt: skip
        addrs = f"[v2:127.0.0.1:{self.mon_v2_port},v1:127.0.0.1:{self.mon_port}]"
        self.run("monmaptool", "--create", "--addv", "a", addrs, "--fsid", self.fsid,
                 str(d / "monmap"))  # fmt: skip
        self.run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(d / "monmap"),
                 "--keyring", str(d / "mon.keyring"))  # fmt: skip

    def _start_mon(self, deadline: float) -> bool:
        """Start the mon; False if it died (another process took a port meanwhile)."""
        mon = self._spawn("mon", "ceph-mon", "-i", "a", "-f")
        while time.monotonic() < deadline:
            if mon.poll() is not None:
                self._children.pop("mon")
                return False
            done = subprocess.run(
                ["ceph", "--connect-timeout", "2", "-s"], env=self.env, capture_output=True,
                timeout=15, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return True
            time.sleep(0.2)
        raise CephLabError(f"the mon did not answer in time: {self._log_tail('mon')}")

    def _make_osd(self) -> None:
        d = self.directory
        osd_uuid = str(uuid.uuid4())
        key = self.run("ceph-authtool", "--gen-print-key").strip()
        osd_id = self.run(
            "ceph", "osd", "new", osd_uuid, "-i", "-", stdin=json.dumps({"cephx_secret": key})
        ).strip()
        if not re.fullmatch(r"\d+", osd_id):
            raise CephLabError(f"ceph osd new answered {osd_id!r}")
        data = d / f"osd/ceph-{osd_id}"
        data.mkdir(parents=True, exist_ok=True)
        self.run("ceph-authtool", "--create-keyring", str(data / "keyring"),
                 "--name", f"osd.{osd_id}", "--add-key", key)  # fmt: skip
        self.run("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid, timeout=60)
        (d / "run/osd.id").write_text(osd_id)
        self._spawn("osd", "ceph-osd", "-i", osd_id, "-f")

    def _spawn(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        out = open(self.directory / f"log/{name}.out", "ab")  # noqa: SIM115 - the child's
        with out:
            child = subprocess.Popen(
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                preexec_fn=_die_with_parent if self.tied else None,
                start_new_session=not self.tied,
            )  # fmt: skip
        self._children[name] = child
        (self.directory / f"run/{name}.pid").write_text(str(child.pid))
        return child

    def _mgr_available(self) -> bool:
        return bool(json.loads(self.ceph("mgr", "stat", "--format", "json"))["available"])

    def _pgs_clean(self) -> bool:
        stat = json.loads(self.ceph("pg", "stat", "--format", "json"))
        pg_map = stat.get("pg_summary", stat)
        total = int(pg_map.get("num_pgs", 0))
        states = pg_map.get("num_pg_by_state", [])
        clean = sum(int(s["num"]) for s in states if s["name"] == "active+clean")
        return total > 0 and clean == total

    def _wait(self, deadline: float, what: str, ready: object) -> None:
        assert callable(ready)
        while True:
            with contextlib.suppress(CephLabError, ValueError, KeyError):
                if ready():
                    return
            for name, child in self._children.items():
                if child.poll() is not None:
                    raise CephLabError(f"ceph {name} died: {self._log_tail(name)}")
            if time.monotonic() > deadline:
                raise CephLabError(f"the Ceph lab: not {what} in time")
            time.sleep(0.3)

    def _log_tail(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / f"log/{name}.out").read_text()[-2000:]
        return "(no log)"

    # --- faults -----------------------------------------------------------------------------

    def kill_osd(self) -> None:
        """SIGKILL the OSD (a crash): I/O to the pool blocks from then on. memstore kept
        its data in RAM, so the cluster does not come back: a test that kills the OSD uses
        a lab of its own."""
        pid = self.pid("osd")
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _wait_gone([pid], 10)

    def pid(self, name: str) -> int | None:
        child = self._children.get(name)
        if child is not None:
            return child.pid if child.poll() is None else None
        return _pid_from(self.directory, name)

    # --- teardown ---------------------------------------------------------------------------

    def stop(self) -> None:
        stop_directory(self.directory)
        for child in self._children.values():
            with contextlib.suppress(Exception):
                child.wait(5)
        self._children.clear()


def _pid_from(directory: Path, name: str) -> int | None:
    try:
        pid = int((directory / f"run/{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if comm == f"ceph-{name}" and _alive(pid) else None


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def stop_directory(directory: Path) -> None:
    """SIGKILL the lab's daemons found by their pid files in `directory` (each checked to be
    the ceph daemon it names: a pid reused since is left alone), then delete `directory`.
    Only an ``andr-ceph-*`` directory is deleted (a typo cannot remove anything else)."""
    if not directory.name.startswith("andr-ceph-"):
        raise ValueError(f"{directory} is not a Ceph lab's directory")
    pids = [pid for name in DAEMONS if (pid := _pid_from(directory, name)) is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    left = _wait_gone(pids, 10)
    if left:
        raise CephLabError(f"Ceph lab daemons survived SIGKILL: {left}")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def ceph_lab() -> Iterator[CephLab]:
    """The session's Ceph cluster (started on first use; never skipped: errors if it
    cannot)."""
    lab = CephLab()
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"] and len(argv) == 1:
        lab = CephLab(tied=False)
        try:
            lab.start()
        except BaseException:
            lab.stop()
            raise
        print(f"# Ceph lab up in {lab.startup_seconds:.1f} s")
        print(f"# stop it: scripts/ceph.sh down {lab.directory}")
        print(f"export CEPH_CONF={lab.conf}")
        print(f"# monitors: 127.0.0.1:{lab.mon_port}, pool: {POOL}, user: client.{CLIENT}")
        print(f"# key of client.{CLIENT}: ceph auth get-key client.{CLIENT}")
        lab.client_key()
        return 0
    if argv[:1] == ["down"] and len(argv) == 2:
        stop_directory(Path(argv[1]).resolve())
        return 0
    print("usage: ceph_lab up | down DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
