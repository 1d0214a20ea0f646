"""The test suite's OVN lab: one per session, never the machine's Open vSwitch or libvirtd
(docs/decisions-ovn-spike.md says why and what was measured).

Everything lives in one mount + network namespace of its own, held by a `sleep` started
with ``unshare --mount --net``:

- Open vSwitch: its own ovsdb-server and ovs-vswitchd (userspace ``netdev`` datapath: these
  kernels have no openvswitch module), its run directory bind-mounted over
  /run/openvswitch *inside* the namespace, so that the ``ovs-vsctl`` libvirt runs for an
  ``<virtualport type='openvswitch'>`` reaches this OVS and not the machine's;
- OVN central: NB and SB ovsdb-servers and ovn-northd, on unix sockets in the lab's
  directory (reachable from the test process as `nb_remote` / `sb_remote`);
- one chassis: ovn-controller (`chassis`), integration bridge ``br-int``, and the provider
  bridge ``br-ex`` mapped as ``physnet1``;
- a libvirtd (as `fault_lab.PrivateLibvirtd` runs it: private directories bind-mounted over
  libvirt's), so guests' taps exist only in the lab's network namespace.

The lab's kernel sees guest frames on the taps (userspace datapath: OVS reads them through
AF_PACKET, the kernel's stack gets them too). So IPv6 is off for every interface made in the
lab's namespace, and an nftables table drops what guests send to the lab's own stack
(matched by the tap prefix of `hypervisor.base.tap_name`).

A further network namespace `outside_netns` plays the world beyond the provider network:
203.0.113.129/25 on a veth whose other end is a port of ``br-ex`` (TX checksum offload off:
shared/notes/ovn-lab.md), so tests can act as an outside client (`outside`).

`cleanup()` destroys the lab's guests, kills by pid every process in the lab's namespaces,
deletes both namespaces and the directory: nothing of the lab survives it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisor.base import TAP_PREFIX
from tests.support.fault_lab import _destroy_everything, wait_for

ROOT = Path(__file__).resolve().parents[2]
#: What the lab runs beyond the packages every machine has (scripts/setup.sh).
PACKAGES = ("nftables", "ethtool", "busybox-static")
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
#: The lab's own directories → where its processes see them (inside its mount namespace).
_MOUNTS = {
    "ovs": "/run/openvswitch",
    "libvirt/run": "/run/libvirt",
    "libvirt/etc": "/etc/libvirt",
    "libvirt/lib": "/var/lib/libvirt",
    "libvirt/cache": "/var/cache/libvirt",
    "libvirt/log": "/var/log/libvirt",
}
#: Guests may send nothing new to the lab's own stack (their replies to nothing, neither).
#: The lab's guard table (scripts/ovn.sh's rules under this name).
GUARD_TABLE = "andromede_guests"


class OvnLab:
    """The lab described above. `start()` is bounded and timed (`startup_seconds`);
    `cleanup()` is safe after a failed or partial start, and twice."""

    integration_bridge = "br-int"
    provider_bridge = "br-ex"
    physnet = "physnet1"
    outside_cidr = "203.0.113.129/25"
    host_provider_cidr = "203.0.113.254/25"

    def __init__(self, chassis: str = "andromede-test-1") -> None:
        self.chassis = chassis
        self.token = secrets.token_hex(3)
        # Under /var/tmp (0711): guests run as libvirt-qemu and must traverse to their disks.
        # Short: unix socket paths are limited to 107 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix=f"andr-ovn-{self.token}-", dir="/var/tmp"))
        self.directory.chmod(0o711)
        self.storage_root = self.directory / "storage"
        self.ovs_dir = self.directory / "ovs"
        self.ovn_dir = self.directory / "ovn"
        self.netns = f"andr-lab-{self.token}"
        self.outside_netns = f"andr-out-{self.token}"
        self.holder: subprocess.Popen[bytes] | None = None
        self.namespaces: set[tuple[str, int]] = set()
        self.startup_seconds: float | None = None
        self.timings: dict[str, float] = {}
        #: name → the command line (env included) each `_daemon` was started with.
        self.daemon_commands: dict[str, list[str]] = {}
        self.watchdog: subprocess.Popen[bytes] | None = None

    # --- where things are ------------------------------------------------------------------

    @property
    def libvirt_uri(self) -> str:
        return f"qemu+unix:///system?socket={self.directory}/libvirt/run/libvirt-sock"

    @property
    def ovs_remote(self) -> str:
        return f"unix:{self.ovs_dir}/db.sock"

    @property
    def nb_remote(self) -> str:
        return f"unix:{self.ovn_dir}/ovnnb_db.sock"

    @property
    def sb_remote(self) -> str:
        return f"unix:{self.ovn_dir}/ovnsb_db.sock"

    # --- commands --------------------------------------------------------------------------

    def run(self, *argv: str, timeout: float = 30, check: bool = True, **env: str) -> str:
        """`argv` inside the lab's mount and network namespaces; its stdout."""
        assert self.holder is not None, "the lab is not started"
        prefix = ["nsenter", "-t", str(self.holder.pid), "-m", "-n"]
        return _run([*prefix, "env", *(f"{k}={v}" for k, v in env.items()), *argv], timeout, check)

    def outside(self, *argv: str, timeout: float = 30, check: bool = True) -> str:
        """`argv` in the outside namespace (a client on the provider network)."""
        return _run(["ip", "netns", "exec", self.outside_netns, *argv], timeout, check)

    def nbctl(self, *args: str, timeout: float = 30) -> str:
        return _run(["ovn-nbctl", f"--db={self.nb_remote}", "--timeout=20", *args], timeout)

    def sbctl(self, *args: str, timeout: float = 30) -> str:
        return _run(["ovn-sbctl", f"--db={self.sb_remote}", "--timeout=20", *args], timeout)

    def vsctl(self, *args: str, timeout: float = 30) -> str:
        return _run(["ovs-vsctl", f"--db={self.ovs_remote}", "--timeout=20", *args], timeout)

    # --- start -----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        started = time.monotonic()
        _run(["bash", "-c", 'source scripts/lib.sh && apt_ensure "$@"', "-", *PACKAGES], 900)
        self._mark("packages", started)
        self._namespaces(timeout)
        self._mark("namespaces", started)
        self._guard()
        self._start_ovs()
        self._mark("ovs", started)
        self._start_ovn()
        self._mark("ovn", started)
        self._start_watchdog()
        self._start_libvirtd(timeout)
        self._mark("libvirtd", started)
        self._start_outside()
        self.nbctl("--wait=hv", "sync")
        self.startup_seconds = time.monotonic() - started
        steps = ", ".join(f"{k} {v:.2f}" for k, v in self.timings.items())
        print(f"\nOVN lab {self.token}: up in {self.startup_seconds:.2f} s (at: {steps})")

    def _mark(self, step: str, started: float) -> None:
        self.timings[step] = time.monotonic() - started

    def _namespaces(self, timeout: float) -> None:
        ready = self.directory / "ready"
        mounts = []
        for private, target in _MOUNTS.items():
            (self.directory / private).mkdir(parents=True)
            source = shlex.quote(str(self.directory / private))
            mounts.append(f"mkdir -p {target}\nmount --bind {source} {target}")
        self.ovn_dir.mkdir()
        self.storage_root.mkdir()
        _private_libvirt_files(self.directory / "libvirt")
        # A tmpfs over /run first: the directories made there (openvswitch, libvirt) must not
        # appear in the machine's /run, where the machine's own daemons would find them.
        script = "\n".join(
            [
                "set -e",
                "mount --make-rprivate /",
                "mount -t tmpfs -o mode=0755 andromede-lab /run",
                *mounts,
                "ip link set lo up",
                f"touch {shlex.quote(str(ready))}",
                "exec sleep infinity",
            ]
        )
        (self.directory / "hold.sh").write_text(script + "\n")
        holder = self.holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "sh", str(self.directory / "hold.sh")],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "hold.err").open("wb"),
        )
        wait_for(lambda: ready.exists() or holder.poll() is not None, timeout, "the lab")
        assert holder.poll() is None, (self.directory / "hold.err").read_text()
        for kind in ("mnt", "net"):
            self.namespaces.add((kind, os.stat(f"/proc/{holder.pid}/ns/{kind}").st_ino))
        _run(["ip", "netns", "attach", self.netns, str(holder.pid)], 10)

    def _guard(self) -> None:
        """No IPv6 on anything made in the lab (taps included, from their creation), and the
        nftables tables that keep guests' frames out of the lab's own stack: make run's own
        (scripts/ovn.sh's `ovn_guard_rules`, for the lab's bridges and tap prefix), so that
        the tests prove the guard a real host gets."""
        for key in ("default", "all"):
            self.run("sysctl", "-q", "-w", f"net.ipv6.conf.{key}.disable_ipv6=1")
        rules = _run(
            ["bash", "-c", 'source scripts/ovn.sh && ovn_guard_rules'], 30,
            env_extra={
                "ANDROMEDE_TAP_PREFIX": TAP_PREFIX,
                "ANDROMEDE_NFT_TABLE": GUARD_TABLE,
                "ANDROMEDE_OVN_INTEGRATION_BRIDGE": self.integration_bridge,
                "ANDROMEDE_OVN_PROVIDER_BRIDGE": self.provider_bridge,
            },
        )  # fmt: skip
        _run(["ip", "netns", "exec", self.netns, "nft", "-f", "-"], 10, stdin=rules)

    def _daemon(self, name: str, *argv: str, directory: Path) -> None:
        """An OVS/OVN daemon, detached with a monitor that restarts it if it crashes (the
        lab note saw one conntrack assertion), its pidfile and log in `directory`."""
        ovs, ovn = str(self.ovs_dir), str(self.ovn_dir)
        env = {"OVS_RUNDIR": ovs, "OVS_LOGDIR": ovs, "OVS_DBDIR": ovs,
               "OVN_RUNDIR": ovn, "OVN_LOGDIR": ovn, "OVN_DBDIR": ovn}  # fmt: skip
        command = [
            name,
            *argv,
            f"--pidfile={directory / name}.pid",
            f"--log-file={directory / name}.log",
            "--detach",
            "--monitor",
            "--no-chdir",
        ]
        self.daemon_commands[name] = ["env", *(f"{k}={v}" for k, v in env.items()), *command]
        self.run(*command, timeout=30, check=True, **env)

    def _start_ovs(self) -> None:
        db = self.ovs_dir / "conf.db"
        _run(["ovsdb-tool", "create", str(db), OVS_SCHEMA], 30)
        self._daemon(
            "ovsdb-server",
            str(db),
            f"--remote=p{self.ovs_remote}",
            f"--unixctl={self.ovs_dir}/ovsdb-server.ctl",
            directory=self.ovs_dir,
        )
        self.vsctl("--no-wait", "init")
        self._daemon(
            "ovs-vswitchd",
            self.ovs_remote,
            f"--unixctl={self.ovs_dir}/ovs-vswitchd.ctl",
            directory=self.ovs_dir,
        )
        self.vsctl(
            "--", "--may-exist", "add-br", self.integration_bridge,
            "--", "set", "bridge", self.integration_bridge, "datapath_type=netdev",
            "fail-mode=secure", "other-config:disable-in-band=true",
            "--", "--may-exist", "add-br", self.provider_bridge,
            "--", "set", "bridge", self.provider_bridge, "datapath_type=netdev",
        )  # fmt: skip

    def _start_ovn(self) -> None:
        for db, schema in (("ovnnb_db", NB_SCHEMA), ("ovnsb_db", SB_SCHEMA)):
            path = self.ovn_dir / f"{db}.db"
            _run(["ovsdb-tool", "create", str(path), schema], 30)
            self.run(
                "ovsdb-server",
                str(path),
                f"--remote=punix:{self.ovn_dir}/{db}.sock",
                f"--unixctl={self.ovn_dir}/{db}.ctl",
                f"--pidfile={self.ovn_dir}/{db}.pid",
                f"--log-file={self.ovn_dir}/{db}.log",
                "--detach",
                "--monitor",
                "--no-chdir",
            )
        self._daemon(
            "ovn-northd",
            f"--ovnnb-db={self.nb_remote}",
            f"--ovnsb-db={self.sb_remote}",
            f"--unixctl={self.ovn_dir}/ovn-northd.ctl",
            directory=self.ovn_dir,
        )
        # Geneve on loopback: one chassis needs no tunnel, but a chassis must declare one.
        self.vsctl(
            "set", "open", ".",
            f"external_ids:system-id={self.chassis}",
            f"external_ids:ovn-remote={self.sb_remote}",
            "external_ids:ovn-encap-type=geneve",
            "external_ids:ovn-encap-ip=127.0.0.1",
            "external_ids:ovn-bridge-datapath-type=netdev",
            f"external_ids:ovn-bridge={self.integration_bridge}",
            f"external_ids:ovn-bridge-mappings={self.physnet}:{self.provider_bridge}",
        )  # fmt: skip
        # ovn-controller 23.03 has no --unixctl: OVN_RUNDIR (set by _daemon) places it.
        self._daemon("ovn-controller", self.ovs_remote, directory=self.ovn_dir)

    def _start_watchdog(self) -> None:
        """make run's watchdog (scripts/ovs_watchdog.py) for the lab's ovsdb-server and
        ovs-vswitchd, inside the lab's namespaces, restarting each with the command line it
        was started with: a SIGKILLed daemon (which its --monitor does not restart) comes
        back as on a real host. Its log: ovs/watchdog.log."""
        assert self.holder is not None
        watches = []
        for name in ("ovsdb-server", "ovs-vswitchd"):  # the database first: the switch needs it
            pidfile = self.ovs_dir / f"{name}.pid"
            watches += ["--watch", str(pidfile), name, shlex.join(self.daemon_commands[name])]
        with (self.ovs_dir / "watchdog.log").open("ab") as log:
            self.watchdog = subprocess.Popen(
                ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "python3",
                 str(ROOT / "scripts" / "ovs_watchdog.py"),
                 "--pidfile", str(self.ovs_dir / "watchdog.pid"), *watches],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        watchdog = self.watchdog
        wait_for(lambda: (self.ovs_dir / "watchdog.pid").exists() or watchdog.poll() is not None,
                 10, "the lab's watchdog")  # fmt: skip
        assert watchdog.poll() is None, (self.ovs_dir / "watchdog.log").read_text()

    def _start_libvirtd(self, timeout: float) -> None:
        log = self.directory / "libvirt" / "libvirtd.log"
        self.run(
            "libvirtd", "-d", "-p", str(self.directory / "libvirt" / "libvirtd.pid"),
            LIBVIRT_LOG_OUTPUTS=f"3:file:{log}",
        )  # fmt: skip

        def answers() -> bool:
            done = subprocess.run(
                ["virsh", "-c", self.libvirt_uri, "version"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            return done.returncode == 0

        wait_for(answers, timeout, "the lab's libvirtd to answer", every=0.1)

    def _start_outside(self) -> None:
        veth = f"andrex{self.token}"
        assert self.holder is not None
        _run(["ip", "netns", "add", self.outside_netns], 10)
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
              "netns", self.outside_netns], 10)  # fmt: skip
        _run(["ip", "link", "set", veth, "netns", str(self.holder.pid)], 10)
        self.run("ip", "link", "set", veth, "up")
        self.vsctl("--may-exist", "add-port", self.provider_bridge, veth)
        self.outside("ip", "link", "set", "lo", "up")
        self.outside("ip", "link", "set", "eth0", "up")
        self.outside("ip", "addr", "add", self.outside_cidr, "dev", "eth0")
        # The hypervisor's own address on the provider network, as make run's machine has
        # 203.0.113.1 on its br-ex: the guard must keep guests off it.
        self.run("ip", "addr", "add", self.host_provider_cidr, "dev", self.provider_bridge)
        self.run("ip", "link", "set", self.provider_bridge, "up")
        # A partial checksum read by OVS through AF_PACKET is forwarded as is: TCP dies.
        self.outside("ethtool", "-K", "eth0", "tx", "off")

    # --- observation -----------------------------------------------------------------------

    def pids(self) -> list[int]:
        """Every process living in the lab's namespaces (its daemons and their guests)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            for kind, inode in self.namespaces:
                with contextlib.suppress(OSError):
                    if os.stat(entry / "ns" / kind).st_ino == inode:
                        found.append(int(entry.name))
                        break
        return found

    def daemon_rss_kib(self) -> dict[str, int]:
        """Resident memory of the lab's daemons (guests and the holder left out), in KiB,
        summed per program name (a monitor counts with its daemon)."""
        usage: dict[str, int] = {}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                name = fields["Name"].strip()
                # A monitor renames itself "<daemon>: monitoring pid …".
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                program = Path(argv0.split(":")[0]).name or name
                if program.startswith(("qemu", "sleep")):
                    continue
                kib = int(fields.get("VmRSS", "0 kB").split()[0])
                usage[program] = usage.get(program, 0) + kib
        return usage

    def lsp_up(self, port: str) -> bool:
        """True when OVN reports the logical switch port bound and up on a chassis."""
        return self.nbctl("lsp-get-up", port).strip() == "up"

    def ping_from_outside(self, address: str, attempts: int = 10) -> bool:
        """True as soon as `address` answers an ICMP echo sent from the outside namespace
        (`attempts` tries of 1 s: the first ones may go to ARP and to flow setup)."""
        for _ in range(attempts):
            done = subprocess.run(
                ["ip", "netns", "exec", self.outside_netns,
                 "busybox", "ping", "-c", "1", "-W", "1", address],
                capture_output=True, timeout=10, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return True
        return False

    def guest_frames_dropped(self) -> int:
        """Packets from guests' taps that the lab's own stack dropped (nftables counter)."""
        listing = self.run("nft", "list", "chain", "inet", GUARD_TABLE, "input")
        match = re.search(r"counter packets (\d+)", listing)
        assert match is not None, listing
        return int(match[1])

    # --- cleanup ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        if self.watchdog is not None:  # first: it would restart the daemons killed below
            self.watchdog.terminate()
            try:
                self.watchdog.wait(5)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
                self.watchdog.wait(5)
        if self.holder is not None and self.holder.poll() is None:
            with contextlib.suppress(Exception):
                _destroy_everything(self.libvirt_uri)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not self.pids(), 5, "the lab's processes to end")
        if self.holder is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.holder.wait(10)
        for name in (self.outside_netns, self.netns):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)
        leftovers = self.pids()
        self.namespaces.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        assert not leftovers, f"processes of the OVN lab survived: {leftovers}"


def _private_libvirt_files(directory: Path) -> None:
    """The machine's QEMU settings (guests as libvirt-qemu), console logs as plain files (no
    virtlogd of the lab's own), and QEMU's capabilities as the machine's libvirtd probed
    them (seconds saved at each start)."""
    machine = Path("/etc/libvirt/qemu.conf").read_text().splitlines()
    kept = [line for line in machine if not line.strip().startswith("stdio_handler")]
    (directory / "etc" / "qemu.conf").write_text("\n".join([*kept, 'stdio_handler = "file"', ""]))
    with contextlib.suppress(OSError):
        shutil.copytree("/var/cache/libvirt/qemu", directory / "cache" / "qemu")


def _run(
    argv: list[str],
    timeout: float,
    check: bool = True,
    stdin: str | None = None,
    env_extra: dict[str, str] | None = None,
) -> str:
    env = {**os.environ, **env_extra} if env_extra else None
    done = subprocess.run(
        argv, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=timeout,
        check=False, env=env,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


@pytest.fixture(scope="session")
def ovn_lab() -> Iterator[OvnLab]:
    """The session's OVN lab (started on first use; never skipped: errors if it cannot)."""
    lab = OvnLab()
    try:
        lab.start()
        yield lab
    finally:
        lab.cleanup()
