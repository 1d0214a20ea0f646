"""A real OpenSSH server on 127.0.0.1 for the SSH tests: the system's /usr/sbin/sshd in the
foreground with its own configuration, host key, client key and log, all in a temporary
directory. Public-key authentication only. Nothing of the system's sshd configuration, keys or
known_hosts is read or changed (scripts/setup.sh test installs openssh-server).

    sshd = LocalSshd(tmp_dir)
    sshd.start()
    ...  # 127.0.0.1:sshd.port, user sshd.username, key sshd.client_key_path
    sshd.restart(new_host_key=True)  # the same port, another host key
    sshd.stop()
"""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
import time
from pathlib import Path

from hypervisor.ssh import SshEndpoint

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "") -> Path:
    """A fresh key pair made by ssh-keygen: `path` and `path`.pub."""
    args = [SSH_KEYGEN, "-q", "-t", key_type, "-N", passphrase, "-C", path.name, "-f", str(path)]
    if key_type == "rsa":
        args[4:4] = ["-b", "2048"]
    subprocess.run(args, check=True, capture_output=True, timeout=30)
    return path


def keygen_fingerprint(public_key: Path) -> str:
    """The SHA256 fingerprint `ssh-keygen -lf` prints for a key file."""
    out = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(public_key)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return out.split()[1]


class LocalSshd:
    """One sshd listening on 127.0.0.1:`port`, accepting `client_key_path` for the current
    user. Each start writes a new log file (`log_path`) at sshd's DEBUG1 level."""

    def __init__(self, workdir: Path) -> None:
        if not SSHD.exists():
            raise RuntimeError(f"{SSHD} is missing: install openssh-server (scripts/setup.sh test)")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.username = pwd.getpwuid(os.getuid()).pw_name
        self.client_key_path = keygen(self.dir / "client_ed25519")
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(
            (self.dir / "client_ed25519.pub").read_text(encoding="ascii"), encoding="ascii"
        )
        self.config_path = self.dir / "sshd_config"
        self.host_key_path = self.dir / "host_key_0"
        self.log_path = self.dir / "sshd-0.log"
        self._generation = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host_key_fingerprint(self) -> str:
        """The current host key's fingerprint, as ssh-keygen reports it."""
        return keygen_fingerprint(Path(f"{self.host_key_path}.pub"))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def log_text(self, since: int = 0) -> str:
        """The current log from byte offset `since` (see `log_mark`)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(since)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_mark(self) -> int:
        """The current log's length: pass it to `log_text` or `wait_for_log` as `since`."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_for_log(self, pattern: str, *, since: int = 0, timeout: float = 5.0) -> str:
        """The log (from `since`) once the regular expression `pattern` matches a line of it;
        AssertionError after `timeout`."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text(since)
            if regex.search(log):
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in the sshd log within {timeout} s:\n{log}")
            time.sleep(0.02)

    def authorize(self, public_key: Path) -> None:
        """Accept one more client key."""
        with self.authorized_keys.open("a", encoding="ascii") as keys:
            keys.write(public_key.read_text(encoding="ascii"))

    def start(self, *, new_host_key: bool = False) -> None:
        if self._process is not None:
            raise RuntimeError("sshd is already running")
        if new_host_key or not self.host_key_path.exists():
            self._generation += 1
            self.host_key_path = keygen(self.dir / f"host_key_{self._generation}")
        self.log_path = self.dir / f"sshd-{self._generation}-{time.monotonic_ns()}.log"
        self._write_config()
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-E", str(self.log_path), "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def restart(self, *, new_host_key: bool = False) -> None:
        """Stop and start again on the same port, with a new host key if asked."""
        self.stop()
        self.start(new_host_key=new_host_key)

    def _write_config(self) -> None:
        self.config_path.write_text(
            "\n".join(
                [
                    f"ListenAddress 127.0.0.1:{self.port}",
                    f"HostKey {self.host_key_path}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "AuthorizedPrincipalsFile none",
                    "PermitRootLogin prohibit-password",
                    "AuthenticationMethods publickey",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "HostbasedAuthentication no",
                    "PermitEmptyPasswords no",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "AllowAgentForwarding no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel DEBUG1",
                    "",
                ]
            ),
            encoding="ascii",
        )

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"sshd exited with status {self._process.returncode}:\n{self.log_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"sshd did not listen on 127.0.0.1:{self.port} within "
                        f"{START_TIMEOUT} s:\n{self.log_text()}"
                    ) from None
                time.sleep(0.02)


def ssh_endpoint_for(server: LocalSshd, key: Path | None = None) -> SshEndpoint:
    """An endpoint for `server`, with its authorised client key unless `key` is given."""
    return SshEndpoint(
        host="127.0.0.1",
        port=server.port,
        username=server.username,
        private_key_path=str(key or server.client_key_path),
    )
