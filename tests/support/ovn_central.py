"""A private OVN central for tests: a northbound `ovsdb-server` (and optionally the southbound
one and `ovn-northd`) on unix sockets in a temporary directory, as child processes of the
test run. Nothing touches the machine's own OVS or OVN (/run/openvswitch, /run/ovn): every
daemon gets explicit socket, control-socket, log and database paths under the directory.

    with OvnCentral(northd=True) as central:
        nb = Northbound(central.nb_remote, owner="t1")

Startup is bounded (`STARTUP_TIMEOUT`); `stop()` kills what it started (by pid) and removes
the directory, also after a failed start. `stop_nb()`/`start_nb()` and `freeze_nb()`/
`thaw_nb()` (SIGSTOP: a server that accepts connections and never answers) are for fault
tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
STARTUP_TIMEOUT = 5.0


class OvnCentral:
    def __init__(self, *, northd: bool = False, sb: bool | None = None) -> None:
        self.northd = northd
        self.with_sb = northd if sb is None else sb or northd
        self.dir = Path(tempfile.mkdtemp(prefix="andromede-ovn-"))
        self.nb_socket = self.dir / "nb.sock"
        self.sb_socket = self.dir / "sb.sock"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def nb_remote(self) -> str:
        return f"unix:{self.nb_socket}"

    @property
    def sb_remote(self) -> str:
        return f"unix:{self.sb_socket}"

    def __enter__(self) -> OvnCentral:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        # Defaults that would otherwise point at the machine's own daemons' directories.
        run = str(self.dir)
        return {**os.environ, "OVS_RUNDIR": run, "OVN_RUNDIR": run, "OVS_LOGDIR": run}

    def start(self) -> None:
        try:
            self._create_db("nb", NB_SCHEMA)
            self.start_nb()
            self.nbctl("init")
            if self.with_sb:
                self._create_db("sb", SB_SCHEMA)
                self._spawn_db("sb", self.sb_socket)
                self._wait_socket(self.sb_socket)
            if self.northd:
                self._spawn(
                    "northd",
                    [
                        "ovn-northd",
                        f"--ovnnb-db={self.nb_remote}",
                        f"--ovnsb-db={self.sb_remote}",
                        f"--unixctl={self.dir / 'northd.ctl'}",
                        f"--log-file={self.dir / 'northd.log'}",
                        "-vconsole:off",
                    ],
                )
                self._wait_socket(self.dir / "northd.ctl")
        except BaseException:
            self.stop()
            raise

    def _create_db(self, name: str, schema: Path) -> None:
        subprocess.run(
            ["ovsdb-tool", "create", str(self.dir / f"{name}.db"), str(schema)],
            check=True,
            timeout=STARTUP_TIMEOUT,
            capture_output=True,
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.dir / f"{name}.out").open("ab")
        self._procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self._env(), cwd=self.dir
        )
        log.close()

    def _spawn_db(self, name: str, socket: Path) -> None:
        self._spawn(
            name,
            [
                "ovsdb-server",
                str(self.dir / f"{name}.db"),
                f"--remote=punix:{socket}",
                f"--unixctl={self.dir / (name + '.ctl')}",
                f"--log-file={self.dir / (name + '.log')}",
                "-vconsole:off",
                "--no-chdir",
            ],
        )

    def _wait_socket(self, socket: Path) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not socket.exists():
            dead = [n for n, p in self._procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(
                    p.read_text(errors="replace")[-2000:] for p in self.dir.glob("*.log")
                )
                raise RuntimeError(f"OVN central: {socket.name} did not appear ({dead})\n{logs}")
            time.sleep(0.01)

    def nbctl(self, *args: str) -> str:
        """ovn-nbctl against this NB (for tests that act behind the driver's back)."""
        return subprocess.run(
            ["ovn-nbctl", f"--db={self.nb_remote}", "--timeout=5", *args],
            check=True,
            timeout=10,
            capture_output=True,
            text=True,
            env=self._env(),
        ).stdout

    def sbctl(self, *args: str) -> str:
        return subprocess.run(
            ["ovn-sbctl", f"--db={self.sb_remote}", "--timeout=5", *args],
            check=True,
            timeout=10,
            capture_output=True,
            text=True,
            env=self._env(),
        ).stdout

    def dump(self) -> dict[str, list[list[object]]]:
        """Every row of every NB table, as `ovsdb-client dump` shows it (rows sorted), to
        compare the database before and after a call."""
        out = subprocess.run(
            ["ovsdb-client", "--format=json", "dump", self.nb_remote, "OVN_Northbound"],
            check=True,
            timeout=10,
            capture_output=True,
            text=True,
            env=self._env(),
        ).stdout
        tables = {}
        for line in out.splitlines():
            table = json.loads(line)
            tables[table["caption"]] = sorted(table["data"], key=json.dumps)
        return tables

    # --- faults --------------------------------------------------------------------------

    def start_nb(self) -> None:
        self.nb_socket.unlink(missing_ok=True)
        self._spawn_db("nb", self.nb_socket)
        self._wait_socket(self.nb_socket)

    def stop_nb(self) -> None:
        self._kill("nb")
        self.nb_socket.unlink(missing_ok=True)

    def freeze_nb(self) -> None:
        self._procs["nb"].send_signal(signal.SIGSTOP)

    def thaw_nb(self) -> None:
        self._procs["nb"].send_signal(signal.SIGCONT)

    def _kill(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        for name in ("northd", "sb", "nb"):
            self._kill(name)
        shutil.rmtree(self.dir, ignore_errors=True)
