"""The hypervisor test lane's real host: libvirtd with QEMU on this machine, the project's
tiny test image, NoCloud seed ISOs and isolated libvirt networks.

Guest networking never leaves the machine: networks here are isolated (no ``<forward>``) and
only on the documentation subnet 198.51.100.0/24: these machines' uplink is in
192.0.2.0/24, their package registries in 203.0.113.0/24 (measured: 203.0.113.80), where make
run's provider network takes 203.0.113.128/25.

What the test image prints on its serial console (see scripts/test-image/init)::

    ANDROMEDE-USERDATA bytes=<n> sha256=<hex>
    ANDROMEDE-SSHKEYS count=<n>
    ANDROMEDE-READY instance-id=<id> ip=<address or none>
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import libvirt
import pycdlib
from lxml import etree as ET

ROOT = Path(__file__).resolve().parents[2]
LIBVIRTD_SCRIPT = ROOT / "scripts" / "libvirtd.sh"
IMAGE_SCRIPT = ROOT / "scripts" / "build-test-image.sh"
URI = "qemu:///system"

DOCUMENTATION_SUBNETS = (ipaddress.IPv4Network("198.51.100.0/24"),)
READY_RE = re.compile(r"^ANDROMEDE-READY instance-id=(?P<id>\S+) ip=(?P<ip>\S+)[ \t\r]*\n", re.M)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def ensure_libvirtd(timeout: float = 900) -> None:
    """Install (first time only) and start libvirtd + virtlogd; return once qemu:///system
    answers. Needs root. The timeout covers a first-time apt install.

    While libvirtd answers, nothing is done: `make test` applied the hypervisor role
    (scripts/libvirtd.sh) just before the lanes started, and each application costs 10-30 s
    of Ansible on a loaded machine. Otherwise the role is applied again."""
    if not _libvirtd_answers():
        subprocess.run([str(LIBVIRTD_SCRIPT)], check=True, timeout=timeout)


def _libvirtd_answers() -> bool:
    try:
        answer = subprocess.run(
            ["virsh", "-c", URI, "version"], capture_output=True, timeout=10, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return answer.returncode == 0


def ensure_test_image(timeout: float = 900) -> Path:
    """Build the test image if its recipe changed (else reuse the cached one); its path."""
    out = subprocess.run(
        [str(IMAGE_SCRIPT)], check=True, timeout=timeout, stdout=subprocess.PIPE, text=True
    ).stdout
    path = Path(out.strip().splitlines()[-1])
    if not path.is_file():
        raise RuntimeError(f"build-test-image.sh printed {path}, which is not a file")
    return path


def network_config(mac: str, address_cidr: str | None, gateway: str | None = None) -> str:
    """A NoCloud network-config v2 for one NIC matched by MAC: static or DHCP."""
    lines = [
        "version: 2",
        "ethernets:",
        "  eth0:",
        "    match:",
        f'      macaddress: "{mac}"',
    ]
    if address_cidr is None:
        lines.append("    dhcp4: true")
    else:
        lines += ["    addresses:", f"      - {ipaddress.ip_interface(address_cidr)}"]
        if gateway is not None:
            lines.append(f"    gateway4: {ipaddress.ip_address(gateway)}")
    return "\n".join(lines) + "\n"


def build_seed_iso(
    path: Path | str,
    instance_id: str,
    hostname: str,
    mac: str,
    address_cidr: str | None,
    user_data: str,
    gateway: str | None = None,
) -> Path:
    """Write a NoCloud seed ISO (volume label ``cidata``: meta-data, user-data,
    network-config) to ``path``: ISO 9660 with Rock Ridge and Joliet names, like
    ``genisoimage -volid cidata -joliet -rock``. ``address_cidr=None`` means DHCP."""
    if not _NAME_RE.match(instance_id) or not _NAME_RE.match(hostname):
        raise ValueError("instance_id and hostname must match [A-Za-z0-9][A-Za-z0-9._-]*")
    mac = mac.lower()
    if not _MAC_RE.match(mac):
        raise ValueError(f"not a MAC address: {mac!r}")
    files = {
        # (ISO 9660 level-1 name, Rock Ridge / Joliet name): content
        ("METADATA.;1", "meta-data"): (f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n"),
        ("USERDATA.;1", "user-data"): user_data,
        ("NETCONF.;1", "network-config"): network_config(mac, address_cidr, gateway),
    }
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    try:
        for (iso_name, name), text in files.items():
            data = text.encode()
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                f"/{iso_name}",
                rr_name=name,
                joliet_path=f"/{name}",
            )
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        iso.write(str(tmp))
    finally:
        iso.close()
    os.replace(tmp, path)
    return path


def _check_subnet(cidr: str) -> ipaddress.IPv4Network:
    net = ipaddress.ip_network(cidr)
    if not isinstance(net, ipaddress.IPv4Network) or not any(
        net.subnet_of(doc) for doc in DOCUMENTATION_SUBNETS
    ):
        raise ValueError(
            f"{cidr}: test networks use only 198.51.100.0/24 "
            "(documentation ranges; guest traffic stays on this machine)"
        )
    if net.prefixlen > 29:
        raise ValueError(f"{cidr}: too small for a gateway and a DHCP range")
    return net


def network_xml(
    name: str, cidr: str = "198.51.100.128/25", dhcp_hosts: Iterable[tuple[str, str]] = ()
) -> str:
    """libvirt XML of an isolated network (bridge + dnsmasq, no ``<forward>``): the host
    takes the first address; DHCP hands out the upper half of the subnet, plus fixed
    MAC → IP entries from ``dhcp_hosts``."""
    if not _NAME_RE.match(name):
        raise ValueError(f"bad network name {name!r}")
    net = _check_subnet(cidr)
    hosts = list(net.hosts())
    root = ET.Element("network")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "bridge", stp="on", delay="0")
    ET.SubElement(root, "dns", enable="no")
    ip = ET.SubElement(root, "ip", address=str(hosts[0]), prefix=str(net.prefixlen))
    dhcp = ET.SubElement(ip, "dhcp")
    ET.SubElement(dhcp, "range", start=str(hosts[len(hosts) // 2]), end=str(hosts[-1]))
    for mac, address in dhcp_hosts:
        if ipaddress.ip_address(address) not in net or not _MAC_RE.match(mac.lower()):
            raise ValueError(f"bad DHCP host entry {mac} {address}")
        ET.SubElement(dhcp, "host", mac=mac.lower(), ip=address)
    return ET.tostring(root, encoding="unicode")


def isolated_network(
    conn: libvirt.virConnect,
    name: str,
    cidr: str = "198.51.100.128/25",
    dhcp_hosts: Iterable[tuple[str, str]] = (),
) -> libvirt.virNetwork:
    """Define and start (or reuse, if one of that name has the same subnet) an isolated
    libvirt network with DHCP; the libvirt ``virNetwork``. Only documentation subnets."""
    xml = network_xml(name, cidr, dhcp_hosts)
    try:
        network = conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
            raise
        network = conn.networkDefineXML(xml)
    else:
        have = ET.fromstring(network.XMLDesc(0).encode())
        ip = have.find("ip")
        if (
            have.find("forward") is not None
            or ip is None
            or ipaddress.ip_interface(f"{ip.get('address')}/{ip.get('prefix') or 24}").network
            != ipaddress.ip_network(cidr)
        ):
            raise ValueError(f"libvirt network {name} exists with another configuration")
    if not network.isActive():
        network.create()
    return network


def remove_network(conn: libvirt.virConnect, name: str) -> None:
    """Stop and undefine the libvirt network ``name``; nothing if it does not exist."""
    try:
        network = conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return
        raise
    if network.isActive():
        network.destroy()
    network.undefine()


def guest_domain_xml(
    name: str,
    disk: Path,
    seed_iso: Path,
    network: str,
    mac: str,
    console_log: Path,
    memory_mib: int = 128,
    domain_type: str = "qemu",
    seed_bus: str = "ide",
) -> str:
    """A domain for the test image: virtio disk, the seed as a read-only CD-ROM (``ide`` on
    the i440fx machine, or ``scsi`` on a virtio-scsi controller; the image's kernel has no
    AHCI, so not ``sata``), a virtio NIC on ``network``, serial console to ``console_log``.
    ``domain_type`` is ``qemu`` (TCG) here: KVM does not work on these machines."""
    if seed_bus not in ("ide", "scsi"):
        raise ValueError("seed_bus is ide or scsi")
    root = ET.Element("domain", type=domain_type)
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(root, "vcpu").text = "1"
    os_ = ET.SubElement(root, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_, "boot", dev="hd")
    ET.SubElement(os_, "bootmenu", enable="no")
    ET.SubElement(ET.SubElement(root, "features"), "acpi")
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    devices = ET.SubElement(root, "devices")

    vda = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(vda, "driver", name="qemu", type="qcow2")
    ET.SubElement(vda, "source", file=str(disk))
    ET.SubElement(vda, "target", dev="vda", bus="virtio")

    if seed_bus == "scsi":
        ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    cdrom = ET.SubElement(devices, "disk", type="file", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", file=str(seed_iso))
    ET.SubElement(cdrom, "target", dev="hdc" if seed_bus == "ide" else "sda", bus=seed_bus)
    ET.SubElement(cdrom, "readonly")

    nic = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(nic, "mac", address=mac.lower())
    ET.SubElement(nic, "source", network=network)
    ET.SubElement(nic, "model", type="virtio")

    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(console_log))
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(root, encoding="unicode")


def create_overlay(base: Path, overlay: Path) -> Path:
    """A qcow2 overlay on ``base`` (explicit backing format)."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(overlay)],
        check=True,
        timeout=60,
    )
    return overlay


def ping(address: str, attempts: int = 5) -> bool:
    """True when ``address`` (a guest on a local isolated network) answers an ICMP echo;
    ``attempts`` tries of 1 s. busybox's ping (busybox-static is installed with the image)."""
    ipaddress.ip_address(address)
    for _ in range(attempts):
        result = subprocess.run(
            ["busybox", "ping", "-c", "1", "-W", "1", address],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=5,
            check=False,
        )
        if result.returncode == 0:
            return True
    return False


def wait_for_ready(console_log: Path, timeout: float = 60) -> re.Match[str]:
    """Poll the serial console log until the image's READY line; its match (groups ``id``
    and ``ip``). TimeoutError with the console's tail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        try:
            text = console_log.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        match = READY_RE.search(text)
        if match:
            return match
        if time.monotonic() >= deadline:
            tail = "\n".join(text.splitlines()[-20:])
            raise TimeoutError(f"no ANDROMEDE-READY line in {timeout:g} s; console:\n{tail}")
        time.sleep(0.05)
