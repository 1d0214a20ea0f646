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

import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
STARTUP_TIMEOUT = 5.0


class OvnCentral:
    def __init__(self, *, northd: bool = False, sb: bool | None = None, tls: bool = False) -> None:
        """`tls`: the NB also listens with TLS on 127.0.0.1 (`nb_tls_remote`), with a CA,
        server and client certificates made for the run (`tls_files`: key, cert, CA)."""
        self.northd = northd
        self.tls = tls
        self.tls_port = 0
        self.with_sb = northd if sb is None else sb or northd
        self.dir = Path(tempfile.mkdtemp(prefix="andromede-ovn-"))
        self.nb_socket = self.dir / "nb.sock"
        self.sb_socket = self.dir / "sb.sock"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def nb_remote(self) -> str:
        return f"unix:{self.nb_socket}"

    @property
    def nb_tls_remote(self) -> str:
        return f"ssl:127.0.0.1:{self.tls_port}"

    @property
    def tls_files(self) -> dict[str, str]:
        """The client's files, as `Northbound` takes them."""
        return {
            "private_key": str(self.dir / "client-key.pem"),
            "certificate": str(self.dir / "client-cert.pem"),
            "ca_cert": str(self.dir / "ca-cert.pem"),
        }

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
            if self.tls:
                make_certificates(self.dir)
                self.tls_port = free_port()
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
        tls = []
        if name == "nb" and self.tls:
            tls = [
                f"--remote=pssl:{self.tls_port}:127.0.0.1",
                f"--private-key={self.dir / 'server-key.pem'}",
                f"--certificate={self.dir / 'server-cert.pem'}",
                f"--ca-cert={self.dir / 'ca-cert.pem'}",
            ]
        self._spawn(
            name,
            [
                "ovsdb-server",
                str(self.dir / f"{name}.db"),
                f"--remote=punix:{socket}",
                *tls,
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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (ovsdb-server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_certificates(folder: Path) -> None:
    """A CA and a server and a client certificate it signs (EC P-256, one day), as PEM files
    ca-cert, server-key/-cert, client-key/-cert in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    def write(path: str, data: bytes) -> None:
        (folder / path).write_bytes(data)
        (folder / path).chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("andromede-test-ca", ca_key, "andromede-test-ca", ca_key, True)
    write("ca-cert.pem", ca.public_bytes(serialization.Encoding.PEM))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(f"andromede-test-{who}", key, "andromede-test-ca", ca_key, False)
        write(
            f"{who}-key.pem",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        write(f"{who}-cert.pem", cert.public_bytes(serialization.Encoding.PEM))
