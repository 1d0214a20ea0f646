"""A second OVN chassis for the session's OVN lab (tests/support/ovn_lab.py), started on
demand: the multi-host path (Geneve between chassis) on one machine (issue 10 item 6,
docs/networking.md).

- Its own network namespace ``andr-ch2-<token>`` holding its own ovsdb-server and
  ovs-vswitchd (userspace ``netdev`` datapath) and ovn-controller (``andromede-test-2``),
  pointed at the lab's southbound database (a unix socket: reachable from any namespace).
- An underlay 192.0.2.0/24 between the lab's namespace and the chassis': a veth whose ends
  are ports of a bridge ``br-ul`` on each side. With the userspace datapath the tunnel
  endpoint must be an address of the kernel on an OVS bridge's internal port: ovs-vswitchd
  routes tunnel packets with the routes it caches from its own namespace, and resolves the
  remote endpoint by ARP (it snoops the replies). So 192.0.2.1 sits on the lab's ``br-ul``,
  192.0.2.2 on the chassis' ``br-ul``, and each chassis' ``ovn-encap-ip`` is that address.
  Measured: no ``ovs/route/add`` and no ``tnl/arp/set`` are needed.
- `plug()` makes a namespace playing a VM on this chassis: a veth into its ``br-int`` bound
  to a logical switch port (``external_ids:iface-id``), with exactly the port's MAC and IP.
  The veth is named like a guest's tap, and the chassis' namespace has make run's guard
  (scripts/ovn.sh's `ovn_guard_rules`, as the lab has): on the userspace datapath the
  kernel gets the VMs' frames too, and without the guard it answered a VM's ARP for a
  tenant address that is also the chassis' underlay address (tenants may use any CIDR,
  192.0.2.0/24 included: the tests' default tenant subnet is).

The lab's own chassis gets its underlay and its Geneve endpoint 192.0.2.1 at `start()`;
`cleanup()` gives it back the endpoint it had (127.0.0.1 in the lab), removes the chassis
from the SB, kills by pid every process in the chassis' and the VMs' namespaces, and
deletes them and its directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hypervisor.base import TAP_PREFIX
from tests.support.fault_lab import wait_for
from tests.support.ovn_lab import GUARD_TABLE, OVS_SCHEMA, OvnLab, _run

#: Geneve's overhead (outer Ethernet 14 + IPv4 20 + UDP 8 + Geneve 8 + OVN's option 8)
#: under a 1500-byte underlay: the tenant MTU.
TENANT_MTU = 1442
UNDERLAY_PREFIX = 24
LAB_UNDERLAY_IP = "192.0.2.1"
CHASSIS_UNDERLAY_IP = "192.0.2.2"


@dataclass(frozen=True)
class Vm:
    """A namespace standing in for a VM on the second chassis, on one logical port."""

    netns: str
    port: str
    mac: str
    ip: str


class SecondChassis:
    """The chassis described above. `start()` is bounded; `cleanup()` is safe after a failed
    or partial start, and twice."""

    underlay_bridge = "br-ul"
    integration_bridge = "br-int"

    def __init__(self, lab: OvnLab, name: str = "andromede-test-2") -> None:
        self.lab = lab
        self.name = name
        self.token = secrets.token_hex(3)
        self.directory = Path(tempfile.mkdtemp(prefix=f"andr-ch2-{self.token}-", dir="/var/tmp"))
        self.netns = f"andr-ch2-{self.token}"
        # Interface names: at most 15 characters.
        self.lab_underlay_veth = f"andul1{self.token}"
        self.underlay_veth = f"andul2{self.token}"
        self.vms: list[Vm] = []
        self._namespaces: list[str] = []
        self._lab_joined = False
        self._lab_encap_ip = ""
        self._lab_ports: list[str] = []
        self.startup_seconds: float | None = None

    @property
    def ovs_remote(self) -> str:
        return f"unix:{self.directory}/db.sock"

    # --- commands --------------------------------------------------------------------------

    def run(self, *argv: str, timeout: float = 30, **env: str) -> str:
        """`argv` in the chassis' network namespace; its stdout."""
        environment = [f"{k}={v}" for k, v in env.items()]
        return _run(["ip", "netns", "exec", self.netns, "env", *environment, *argv], timeout)

    def vsctl(self, *args: str, timeout: float = 30) -> str:
        return _run(["ovs-vsctl", f"--db={self.ovs_remote}", "--timeout=20", *args], timeout)

    def appctl(self, *args: str, timeout: float = 30) -> str:
        """An ovs-appctl command to the chassis' ovs-vswitchd."""
        target = f"{self.directory}/ovs-vswitchd.ctl"
        return _run(["ovs-appctl", "-t", target, "--timeout=20", *args], timeout)

    def vm(self, vm: Vm, *argv: str, timeout: float = 30, check: bool = True) -> str:
        """`argv` in `vm`'s namespace."""
        return _run(["ip", "netns", "exec", vm.netns, *argv], timeout, check)

    # --- start -----------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        started = time.monotonic()
        self._namespace(self.netns)
        self.run("ip", "link", "set", "lo", "up")
        self._guard()
        self._start_ovs()
        self._underlay()
        self._start_controller()
        wait_for(self._tunnel_ports, timeout, "a Geneve port on each chassis", every=0.1)
        self.startup_seconds = time.monotonic() - started
        print(f"\nsecond chassis {self.name} ({self.netns}): up in {self.startup_seconds:.2f} s")

    def _namespace(self, name: str) -> None:
        """A network namespace with IPv6 off before anything is made in it (no link-local
        chatter on the underlay or from the VMs)."""
        _run(["ip", "netns", "add", name], 10)
        self._namespaces.append(name)
        off = [f"net.ipv6.conf.{key}.disable_ipv6=1" for key in ("default", "all")]
        _run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", *off], 10)

    def _guard(self) -> None:
        """make run's nftables guard, for this chassis' bridges and the VMs' veths."""
        rules = _run(
            ["bash", "-c", "source scripts/ovn.sh && ovn_guard_rules"], 30,
            env_extra={
                "ANDROMEDE_TAP_PREFIX": TAP_PREFIX,
                "ANDROMEDE_NFT_TABLE": GUARD_TABLE,
                "ANDROMEDE_OVN_INTEGRATION_BRIDGE": self.integration_bridge,
                "ANDROMEDE_OVN_PROVIDER_BRIDGE": self.lab.provider_bridge,  # none here
            },
        )  # fmt: skip
        _run(["ip", "netns", "exec", self.netns, "nft", "-f", "-"], 10, stdin=rules)

    def _daemon(self, name: str, *argv: str) -> None:
        """As `OvnLab._daemon`: detached, restarted by its monitor if it crashes, its
        pidfile, log and (through the environment) its control socket in the directory."""
        where = str(self.directory)
        self.run(
            name, *argv,
            f"--pidfile={where}/{name}.pid", f"--log-file={where}/{name}.log",
            "--detach", "--monitor", "--no-chdir",
            OVS_RUNDIR=where, OVS_LOGDIR=where, OVS_DBDIR=where,
            OVN_RUNDIR=where, OVN_LOGDIR=where, OVN_DBDIR=where,
        )  # fmt: skip

    def _start_ovs(self) -> None:
        db = self.directory / "conf.db"
        _run(["ovsdb-tool", "create", str(db), OVS_SCHEMA], 30)
        self._daemon(
            "ovsdb-server", str(db), f"--remote=p{self.ovs_remote}",
            f"--unixctl={self.directory}/ovsdb-server.ctl",
        )  # fmt: skip
        self.vsctl("--no-wait", "init")
        self._daemon(
            "ovs-vswitchd", self.ovs_remote, f"--unixctl={self.directory}/ovs-vswitchd.ctl"
        )
        self.vsctl(
            "--", "--may-exist", "add-br", self.integration_bridge,
            "--", "set", "bridge", self.integration_bridge, "datapath_type=netdev",
            "fail-mode=secure", "other-config:disable-in-band=true",
        )  # fmt: skip

    def _underlay(self) -> None:
        """The veth between the two chassis' ``br-ul``, each bridge's internal port holding
        its chassis' tunnel endpoint; the lab's chassis moves its Geneve endpoint there."""
        _run(["ip", "-n", self.lab.netns, "link", "add", self.lab_underlay_veth, "type", "veth",
              "peer", "name", self.underlay_veth, "netns", self.netns], 10)  # fmt: skip
        self._lab_joined = True
        sides = (
            (self.lab.run, self.lab.vsctl, self.lab_underlay_veth, LAB_UNDERLAY_IP),
            (self.run, self.vsctl, self.underlay_veth, CHASSIS_UNDERLAY_IP),
        )
        for run, vsctl, veth, address in sides:
            run("ip", "link", "set", veth, "up")
            vsctl(
                "--", "--may-exist", "add-br", self.underlay_bridge,
                "--", "set", "bridge", self.underlay_bridge, "datapath_type=netdev",
                "--", "--may-exist", "add-port", self.underlay_bridge, veth,
            )  # fmt: skip
            run("ip", "addr", "replace", f"{address}/{UNDERLAY_PREFIX}", "dev",
                self.underlay_bridge)  # fmt: skip
            run("ip", "link", "set", self.underlay_bridge, "up")
        self._lab_encap_ip = self.lab.vsctl("get", "open", ".", "external_ids:ovn-encap-ip")
        self.lab.vsctl("set", "open", ".", f"external_ids:ovn-encap-ip={LAB_UNDERLAY_IP}")

    def _start_controller(self) -> None:
        self.vsctl(
            "set", "open", ".",
            f"external_ids:system-id={self.name}",
            f"external_ids:ovn-remote={self.lab.sb_remote}",
            "external_ids:ovn-encap-type=geneve",
            f"external_ids:ovn-encap-ip={CHASSIS_UNDERLAY_IP}",
            "external_ids:ovn-bridge-datapath-type=netdev",
            f"external_ids:ovn-bridge={self.integration_bridge}",
        )  # fmt: skip
        self._daemon("ovn-controller", self.ovs_remote)

    def _tunnel_ports(self) -> bool:
        """Each chassis has a Geneve port towards the other's endpoint."""
        return all(
            f'remote_ip="{remote}"'
            in vsctl("--columns=options", "find", "interface", "type=geneve")
            for vsctl, remote in (
                (self.lab.vsctl, CHASSIS_UNDERLAY_IP),
                (self.vsctl, LAB_UNDERLAY_IP),
            )
        )

    # --- a VM on this chassis --------------------------------------------------------------

    def plug(self, port: str, mac: str, ip: str, prefix: int, on_lab: bool = False) -> Vm:
        """A namespace on this chassis (on the lab's chassis with `on_lab`) whose ``eth0``
        is the logical switch port `port`, with MAC `mac` and `ip`/`prefix`, MTU 1442, TX
        checksum offload off (a partial checksum read by OVS through AF_PACKET is forwarded
        as is: TCP dies, shared/notes/ovn-lab.md; measured again through Geneve here)."""
        index = len(self.vms)
        vm = Vm(netns=f"andr-vm-{self.token}-{index}", port=port, mac=mac, ip=ip)
        # Named like a guest's tap: the guard of each chassis' namespace covers it.
        veth = f"{TAP_PREFIX}vm{self.token}{index}"
        host_netns, run, vsctl = (
            (self.lab.netns, self.lab.run, self.lab.vsctl)
            if on_lab
            else (self.netns, self.run, self.vsctl)
        )
        self._namespace(vm.netns)
        # Made in the VM's namespace: deleting that namespace deletes the pair.
        _run(["ip", "-n", vm.netns, "link", "add", "eth0", "type", "veth",
              "peer", "name", veth, "netns", host_netns], 10)  # fmt: skip
        self.vms.append(vm)
        if on_lab:
            self._lab_ports.append(veth)
        run("ip", "link", "set", veth, "up")
        for command in (
            ("ip", "link", "set", "lo", "up"),
            ("ip", "link", "set", "eth0", "address", mac, "mtu", str(TENANT_MTU)),
            ("ip", "addr", "add", f"{ip}/{prefix}", "dev", "eth0"),
            ("ip", "link", "set", "eth0", "up"),
            ("ethtool", "-K", "eth0", "tx", "off"),
        ):
            self.vm(vm, *command)
        vsctl(
            "--", "--may-exist", "add-port", self.integration_bridge, veth,
            "--", "set", "interface", veth, f"external_ids:iface-id={port}",
            f'external_ids:attached-mac="{mac}"',
        )  # fmt: skip
        return vm

    def ping(self, vm: Vm, address: str, attempts: int = 10, size: int = 56) -> bool:
        """True as soon as `address` answers an ICMP echo of `size` bytes of data from `vm`
        (`attempts` tries of 1 s: the first may go to flow setup)."""
        for _ in range(attempts):
            done = subprocess.run(
                ["ip", "netns", "exec", vm.netns,
                 "busybox", "ping", "-c", "1", "-W", "1", "-s", str(size), address],
                capture_output=True, timeout=10, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return True
        return False

    # --- observation -----------------------------------------------------------------------

    def tunnel_statistics(self) -> dict[str, int]:
        """Packet counters of this chassis' Geneve port (towards the lab's chassis)."""
        name = self.vsctl("--bare", "--columns=name", "find", "interface", "type=geneve").strip()
        assert name, "no Geneve port on the second chassis"
        assert "\n" not in name, f"one Geneve port expected, found {name!r}"
        raw = self.vsctl("get", "interface", name, "statistics").strip().strip("{}")
        return {k.strip(): int(v) for k, v in (item.split("=") for item in raw.split(","))}

    def datapath_flows(self) -> str:
        """The chassis' datapath flows (``tnl_push``/``tnl_pop`` actions when tunnelling)."""
        return self.appctl("dpctl/dump-flows")

    def pids(self) -> list[int]:
        """Every process living in the chassis' or its VMs' network namespaces."""
        inodes = set()
        for name in self._namespaces:
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/run/netns/{name}").st_ino)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino in inodes:
                    found.append(int(entry.name))
        return found

    # --- cleanup ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not self.pids(), 5, "the second chassis' processes to end")
        leftovers = self.pids()
        # Killed, ovn-controller leaves its Chassis row: the lab's chassis would keep a
        # tunnel to an endpoint that is gone.
        with contextlib.suppress(AssertionError):
            self.lab.sbctl("--if-exists", "chassis-del", self.name)
        if self._lab_joined:
            restore = ["--", "--if-exists", "del-br", self.underlay_bridge]
            for veth in self._lab_ports:
                restore += ["--", "--if-exists", "del-port", self.integration_bridge, veth]
            if self._lab_encap_ip:
                encap = self._lab_encap_ip.strip()
                restore += ["--", "set", "open", ".", f"external_ids:ovn-encap-ip={encap}"]
            with contextlib.suppress(AssertionError):
                self.lab.vsctl(*restore)
        # Deleting a namespace deletes the veths in it, and so their peers in the lab's.
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)
        self._namespaces.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        assert not leftovers, f"processes of the second chassis survived: {leftovers}"


def bound_chassis(lab: OvnLab, port: str) -> str:
    """The name of the chassis where the SB shows logical port `port` bound ('' if none)."""
    chassis = lab.sbctl("--bare", "--columns=chassis", "find", "Port_Binding",
                        f"logical_port={port}").strip()  # fmt: skip
    if not chassis:
        return ""
    return lab.sbctl("--bare", "--columns=name", "list", "Chassis", chassis).strip()


@contextlib.contextmanager
def second_chassis(lab: OvnLab) -> Iterator[SecondChassis]:
    """A second chassis for the lab, for one test (gone with everything it made after)."""
    chassis = SecondChassis(lab)
    try:
        chassis.start()
        yield chassis
    finally:
        chassis.cleanup()
