"""Domain XML from a `DomainSpec`, built with lxml only (never string formatting): every value
is an element's text or an attribute's value, escaped by the serialiser, so a name or title
containing ``<``, ``'``, ``"``, ``&`` or ``]]>`` stays data and cannot add markup.

Choices made here:

- Disks are ``<disk type='volume'>`` with ``<source pool=… volume=…/>``: libvirt resolves the
  path when the domain starts, the XML names what the control plane knows (pool and volume),
  and it is the same for a local or a remote host.
- The paravirtual bus of a CD-ROM is virtio-scsi: a ``DiskSpec(device='cdrom')`` on bus
  ``virtio`` or ``scsi`` goes on a virtio-scsi controller (there is no virtio-blk CD-ROM).
  ``ide`` is accepted too (the machine type is i440fx ``pc``, which has IDE); ``sata`` needs
  AHCI in the guest's kernel, which the project's test image (Debian's cloud kernel) lacks.
- The first disk of device ``disk`` gets boot order 1.
- Our metadata lives in ``<metadata>`` under the namespace `NAMESPACE`: tenant id, instance id,
  display title and a digest of the spec (so defining the same spec twice is a no-op).
- The serial console (and the ``<console>`` that aliases it) writes to ``spec.console_log``
  when it is set, appending (``append='on'``: the console survives a stop and start, and a
  guest's every boot stays visible; readers tail it), else to a pty.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from dataclasses import dataclass

from lxml import etree as ET

from hypervisor.base import DiskSpec, DomainSpec, DriverError

NAMESPACE = "urn:andromede:domain:1"
PREFIX = "andromede"
#: Bumped whenever the XML built for a given spec changes, so such domains are redefined.
BUILDER_VERSION = 1
#: UUIDs of domains whose name is not itself a UUID are derived from it in this namespace.
UUID_NAMESPACE = uuid.UUID("5d0c7a5e-3a52-4d8e-9a44-6a2f1ad0c0de")

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_TARGET_RE = re.compile(r"^(vd|sd|hd)[a-z]{1,2}$")
_DISK_BUSES = ("virtio", "scsi", "sata", "ide")
_FORMATS = ("qcow2", "raw")


@dataclass(frozen=True)
class DomainMetadata:
    tenant_id: str | None
    instance_id: str | None
    title: str | None
    spec_digest: str | None


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def check_name(kind: str, name: str) -> None:
    """Refuse names libvirt would turn into surprising paths or that XML cannot carry: empty,
    ``.``/``..``, a ``/``, or control characters. (Markup characters are fine: see above.)"""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name:
        raise DriverError(f"invalid {kind} name {name!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise DriverError(f"invalid {kind} name {name!r}: control characters")


def domain_uuid(name: str) -> str:
    """The domain's libvirt UUID: the name itself when it is a UUID (instances are named by
    their UUID), else one derived from the name, so redefining keeps the same UUID."""
    try:
        return str(uuid.UUID(name))
    except ValueError:
        return str(uuid.uuid5(UUID_NAMESPACE, name))


def spec_digest(spec: DomainSpec) -> str:
    """A stable digest of everything in the spec (and of the builder's version)."""
    data = {"builder": BUILDER_VERSION, "spec": dataclasses.asdict(spec)}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _cdrom_bus(disk: DiskSpec) -> str:
    return "scsi" if disk.bus == "virtio" else disk.bus


def _check_spec(spec: DomainSpec) -> None:
    check_name("domain", spec.name)
    if spec.vcpus < 1 or spec.memory_mb < 1:
        raise DriverError(f"domain {spec.name!r}: vcpus and memory_mb must be positive")
    targets = [disk.target for disk in spec.disks]
    if len(set(targets)) != len(targets):
        raise DriverError(f"domain {spec.name!r}: two disks with the same target")
    for disk in spec.disks:
        if disk.device not in ("disk", "cdrom"):
            raise DriverError(f"disk {disk.target}: device is disk or cdrom, not {disk.device!r}")
        if disk.bus not in _DISK_BUSES or disk.format not in _FORMATS:
            raise DriverError(f"disk {disk.target}: unsupported bus or format")
        if not _TARGET_RE.match(disk.target):
            raise DriverError(f"disk target {disk.target!r} is not like vda, sdb, hdc")
        check_name("pool", disk.pool)
        check_name("volume", disk.volume)
    for nic in spec.nics:
        if not _MAC_RE.match(nic.mac.lower()):
            raise DriverError(f"not a MAC address: {nic.mac!r}")


def _disk(devices: ET._Element, disk: DiskSpec, boot: bool) -> None:
    element = ET.SubElement(devices, "disk", type="volume", device=disk.device)
    ET.SubElement(element, "driver", name="qemu", type=disk.format)
    ET.SubElement(element, "source", pool=disk.pool, volume=disk.volume)
    bus = _cdrom_bus(disk) if disk.device == "cdrom" else disk.bus
    ET.SubElement(element, "target", dev=disk.target, bus=bus)
    if boot:
        ET.SubElement(element, "boot", order="1")
    if disk.readonly or disk.device == "cdrom":
        ET.SubElement(element, "readonly")


def _metadata(root: ET._Element, spec: DomainSpec) -> None:
    metadata = ET.SubElement(root, "metadata")
    ours = ET.SubElement(metadata, _q("instance"), nsmap={PREFIX: NAMESPACE})
    ET.SubElement(ours, _q("tenant-id")).text = spec.tenant_id
    ET.SubElement(ours, _q("instance-id")).text = spec.instance_id
    ET.SubElement(ours, _q("title")).text = spec.title
    ET.SubElement(ours, _q("spec-digest")).text = spec_digest(spec)


def _console(devices: ET._Element, log_path: str | None) -> None:
    kind = "file" if log_path else "pty"
    serial = ET.SubElement(devices, "serial", type=kind)
    if log_path:
        ET.SubElement(serial, "source", path=log_path, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type=kind)
    if log_path:
        ET.SubElement(console, "source", path=log_path, append="on")
    ET.SubElement(console, "target", type="serial", port="0")


def build_domain_xml(spec: DomainSpec) -> str:
    """The libvirt domain XML of `spec` (see the module docstring)."""
    _check_spec(spec)
    try:
        root = ET.Element("domain", type=spec.domain_type)
        ET.SubElement(root, "name").text = spec.name
        ET.SubElement(root, "uuid").text = domain_uuid(spec.name)
        # libvirt refuses line breaks in <title>; the exact title is in our metadata.
        ET.SubElement(root, "title").text = " ".join(spec.title.splitlines())
        _metadata(root, spec)
        ET.SubElement(root, "memory", unit="MiB").text = str(spec.memory_mb)
        ET.SubElement(root, "vcpu").text = str(spec.vcpus)
        os_ = ET.SubElement(root, "os")
        machine = {"machine": "pc"} if spec.arch in ("x86_64", "i686") else {}
        ET.SubElement(os_, "type", arch=spec.arch, **machine).text = "hvm"
        ET.SubElement(os_, "bootmenu", enable="no")
        features = ET.SubElement(root, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(features, "apic")
        ET.SubElement(root, "clock", offset="utc")
        ET.SubElement(root, "on_poweroff").text = "destroy"
        ET.SubElement(root, "on_reboot").text = "restart"
        ET.SubElement(root, "on_crash").text = "destroy"
        devices = ET.SubElement(root, "devices")
        boot_disk = next((d for d in spec.disks if d.device == "disk"), None)
        for disk in spec.disks:
            _disk(devices, disk, boot=disk is boot_disk)
        if any(d.bus == "scsi" or (d.device == "cdrom" and d.bus == "virtio") for d in spec.disks):
            ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
        for nic in spec.nics:
            interface = ET.SubElement(devices, "interface", type="network")
            ET.SubElement(interface, "mac", address=nic.mac.lower())
            ET.SubElement(interface, "source", network=nic.network)
            ET.SubElement(interface, "model", type=nic.model)
            if nic.filter_name:
                ET.SubElement(interface, "filterref", filter=nic.filter_name)
        _console(devices, spec.console_log)
        ET.SubElement(devices, "memballoon", model="none")
    except ValueError as exc:  # lxml: a value that XML cannot carry (NUL, control chars)
        raise DriverError(f"domain {spec.name!r}: {exc}") from exc
    return ET.tostring(root, encoding="unicode")


def probe_domain_xml(name: str, domain_type: str, arch: str) -> str:
    """A minimal guest: no disk, no NIC, 32 MiB. Its firmware finds nothing to boot and, with
    ``rebootTimeout=0``, reboots at once: that reboot proves the virtual CPU ran."""
    root = ET.Element("domain", type=domain_type)
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory", unit="MiB").text = "32"
    ET.SubElement(root, "vcpu").text = "1"
    os_ = ET.SubElement(root, "os")
    ET.SubElement(os_, "type", arch=arch).text = "hvm"
    ET.SubElement(os_, "boot", dev="hd")
    ET.SubElement(os_, "bios", rebootTimeout="0")
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    devices = ET.SubElement(root, "devices")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(root, encoding="unicode")


def _parse(xml: str | bytes) -> ET._Element:
    data = xml.encode() if isinstance(xml, str) else xml
    # No network, no entities: this is XML from libvirt, but parse it defensively anyway.
    parser = ET.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return ET.fromstring(data, parser)


def parse_metadata(xml: str | bytes) -> DomainMetadata | None:
    """Our metadata from a domain's XML, or from the element ``virDomainGetMetadata`` returns
    (libvirt gives that one back without its namespace); None when the domain has none (a
    domain the control plane did not define)."""
    root = _parse(xml)
    if root.tag in (_q("instance"), "instance"):
        ours, namespaced = root, root.tag != "instance"
    else:
        ours, namespaced = root.find(f"metadata/{_q('instance')}"), True
    if ours is None:
        return None

    def text(tag: str) -> str | None:
        element = ours.find(_q(tag) if namespaced else tag)
        return None if element is None else (element.text or "")

    return DomainMetadata(
        tenant_id=text("tenant-id"),
        instance_id=text("instance-id"),
        title=text("title"),
        spec_digest=text("spec-digest"),
    )


def console_log_path(xml: str | bytes) -> str | None:
    """The file the domain's first serial port writes to, if it writes to a file."""
    root = _parse(xml)
    for serial in root.iterfind("devices/serial"):
        if serial.get("type") == "file":
            source = serial.find("source")
            return None if source is None else source.get("path")
        return None
    return None
