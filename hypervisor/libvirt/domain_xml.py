"""Domain XML from a `DomainSpec`, built with lxml only (never string formatting): every value
is an element's text or an attribute's value, escaped by the serialiser, so a name or title
containing ``<``, ``'``, ``"``, ``&`` or ``]]>`` stays data and cannot add markup.

Choices made here:

- Disks are ``<disk type='volume'>`` with ``<source pool=… volume=…/>``: libvirt resolves the
  path when the domain starts, the XML names what the control plane knows (pool and volume),
  and it is the same for a local or a remote host.
- Except on rbd pools, whose volumes libvirt refuses as volume disks ("using 'rbd' pools for
  backing 'volume' disks isn't yet supported", shared/notes/ceph-lab.md): those are
  ``<disk type='network'>`` with ``<source protocol='rbd' name='<rados pool>/<image>'>``,
  the cluster's monitors as ``<host>`` and ``<auth>`` naming the pool's cephx user and
  secret, taken from the pool's own definition (`RbdSource`; the caller reads it from the
  host). So a running guest does not depend on the libvirt pool, only on the secret.
- The paravirtual bus of a CD-ROM is virtio-scsi: a ``DiskSpec(device='cdrom')`` on bus
  ``virtio`` or ``scsi`` goes on a virtio-scsi controller (there is no virtio-blk CD-ROM).
  ``ide`` is accepted too (the machine type is i440fx ``pc``, which has IDE); ``sata`` needs
  AHCI in the guest's kernel, which the project's test image (Debian's cloud kernel) lacks.
- The first disk of device ``disk`` gets boot order 1.
- Our metadata lives in ``<metadata>`` under the namespace `NAMESPACE`: tenant id, instance id,
  display title and a digest of the spec (so defining the same spec twice is a no-op).
- A NIC is on a libvirt network (``<interface type='network'>``) or on an Open vSwitch
  bridge as an OVN port: ``<interface type='bridge'>`` with ``<virtualport
  type='openvswitch'>`` whose ``interfaceid`` is the port's UUID (libvirt then runs
  ``ovs-vsctl add-port`` with ``external-ids:iface-id``, which ovn-controller binds), a
  target device name of ours, the MTU, and ``<driver><host csum='off'/>`` when asked.
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
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree as ET

from hypervisor.base import DiskSpec, DomainSpec, DriverError, NicSpec, RbdSource

#: What `build_domain_xml` and `disk_xml` are told of the disks' pools: the source of each
#: rbd pool a disk is in, by pool name (a pool not in it is a directory pool).
RbdSources = Mapping[str, RbdSource]

NAMESPACE = "urn:andromede:domain:1"
PREFIX = "andromede"
#: Bumped whenever the XML built for a given spec changes, so such domains are redefined.
BUILDER_VERSION = 1
#: UUIDs of domains whose name is not itself a UUID are derived from it in this namespace.
UUID_NAMESPACE = uuid.UUID("5d0c7a5e-3a52-4d8e-9a44-6a2f1ad0c0de")

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_TARGET_RE = re.compile(r"^(vd|sd|hd)[a-z]{1,2}$")
#: A tap name of ours: not libvirt's reserved "vnet"/"macvtap" prefixes, at most 15 bytes.
_DEV_RE = re.compile(r"^[a-z][a-z0-9_-]{0,14}$")
_RESERVED_DEV_PREFIXES = ("vnet", "macvtap", "macvlan")
#: NicSpec fields added after domains were defined: left out of the digest while they hold
#: their defaults, so the digest of an older spec stays the same (no needless redefinition).
_NIC_FIELD_DEFAULTS = {
    "bridge": None,
    "interface_id": None,
    "mtu": None,
    "target_dev": None,
    "csum_off": False,
}
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


def spec_digest(spec: DomainSpec, rbd: RbdSources | None = None) -> str:
    """A stable digest of everything in the spec (and of the builder's version), and of
    the sources of its rbd disks (so a cluster's new monitors or user redefine it)."""
    raw = dataclasses.asdict(spec)
    for nic in raw["nics"]:
        for key, default in _NIC_FIELD_DEFAULTS.items():
            if nic.get(key) == default:
                del nic[key]
    data: dict[str, object] = {"builder": BUILDER_VERSION, "spec": raw}
    used = _used_rbd(spec.disks, rbd)
    if used:  # absent without rbd disks: the digests of older domains stay the same
        data["rbd"] = {name: dataclasses.asdict(source) for name, source in used.items()}
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
        check_disk(disk)
    macs = [nic.mac.lower() for nic in spec.nics]
    if len(set(macs)) != len(macs):
        raise DriverError(f"domain {spec.name!r}: two NICs with the same MAC")
    for nic in spec.nics:
        check_nic(nic)


def check_disk(disk: DiskSpec) -> None:
    """Refuse a disk spec libvirt would reject late or misread (see DiskSpec)."""
    if disk.device not in ("disk", "cdrom"):
        raise DriverError(f"disk {disk.target}: device is disk or cdrom, not {disk.device!r}")
    if disk.bus not in _DISK_BUSES or disk.format not in _FORMATS:
        raise DriverError(f"disk {disk.target}: unsupported bus or format")
    check_target(disk.target)
    check_name("pool", disk.pool)
    check_name("volume", disk.volume)
    if disk.encryption_secret is not None:
        try:
            uuid.UUID(disk.encryption_secret)
        except ValueError:
            raise DriverError(f"disk {disk.target}: the encryption secret is not a UUID") from None


def check_target(target: str) -> None:
    if not isinstance(target, str) or not _TARGET_RE.match(target):
        raise DriverError(f"disk target {target!r} is not like vda, sdb, hdc")


def check_nic(nic: NicSpec) -> None:
    """Refuse a NIC spec libvirt would reject late or misread (see NicSpec)."""
    if not _MAC_RE.match(nic.mac.lower()):
        raise DriverError(f"not a MAC address: {nic.mac!r}")
    if (nic.network is None) == (nic.bridge is None):
        raise DriverError(f"NIC {nic.mac}: exactly one of network and bridge")
    if nic.network is not None:
        if nic.interface_id or nic.target_dev or nic.mtu or nic.csum_off:
            raise DriverError(f"NIC {nic.mac}: OVS settings on a libvirt-network NIC")
        return
    assert nic.bridge is not None
    check_name("bridge", nic.bridge)
    if nic.filter_name:
        raise DriverError(f"NIC {nic.mac}: nwfilters are for libvirt-network NICs")
    try:
        uuid.UUID(str(nic.interface_id))
    except ValueError:
        raise DriverError(f"NIC {nic.mac}: interface_id must be a UUID") from None
    if nic.target_dev is not None and (
        not _DEV_RE.match(nic.target_dev) or nic.target_dev.startswith(_RESERVED_DEV_PREFIXES)
    ):
        raise DriverError(f"NIC {nic.mac}: bad target device name {nic.target_dev!r}")
    if nic.mtu is not None and not 68 <= nic.mtu <= 65535:
        raise DriverError(f"NIC {nic.mac}: MTU {nic.mtu} out of range")


def _used_rbd(disks: tuple[DiskSpec, ...], rbd: RbdSources | None) -> dict[str, RbdSource]:
    return {d.pool: rbd[d.pool] for d in disks if rbd and d.pool in rbd}


def _check_rbd_disk(disk: DiskSpec, source: RbdSource) -> None:
    if disk.format != "raw" or disk.encryption_secret is not None or disk.device != "disk":
        raise DriverError(
            f"disk {disk.target}: a volume of rbd pool {disk.pool!r} is a raw, unencrypted disk"
        )
    check_name("volume", source.pool)
    uuid.UUID(source.secret_uuid)
    if not source.monitors or not source.user:
        raise DriverError(f"disk {disk.target}: rbd pool {disk.pool!r} has no monitor or user")


def _network_disk(devices: ET._Element, disk: DiskSpec, source: RbdSource, boot: bool) -> None:
    _check_rbd_disk(disk, source)
    element = ET.SubElement(devices, "disk", type="network", device="disk")
    # discard='unmap': the guest's TRIM frees RADOS objects (thin images stay thin).
    ET.SubElement(element, "driver", name="qemu", type="raw", cache="none", discard="unmap")
    auth = ET.SubElement(element, "auth", username=source.user)
    ET.SubElement(auth, "secret", type="ceph", uuid=source.secret_uuid)
    held = ET.SubElement(element, "source", protocol="rbd", name=f"{source.pool}/{disk.volume}")
    for host, port in source.monitors:
        ET.SubElement(held, "host", name=host, port=str(int(port)))
    ET.SubElement(element, "target", dev=disk.target, bus=disk.bus)
    if boot:
        ET.SubElement(element, "boot", order="1")
    if disk.readonly:
        ET.SubElement(element, "readonly")


def _disk(devices: ET._Element, disk: DiskSpec, boot: bool, rbd: RbdSources | None = None) -> None:
    if rbd and disk.pool in rbd:
        _network_disk(devices, disk, rbd[disk.pool], boot)
        return
    element = ET.SubElement(devices, "disk", type="volume", device=disk.device)
    ET.SubElement(element, "driver", name="qemu", type=disk.format)
    source = ET.SubElement(element, "source", pool=disk.pool, volume=disk.volume)
    if disk.encryption_secret is not None:
        # QEMU opens the LUKS volume with the secret's value, handed over by libvirt.
        encryption = ET.SubElement(source, "encryption", format="luks")
        ET.SubElement(encryption, "secret", type="passphrase", uuid=disk.encryption_secret)
    bus = _cdrom_bus(disk) if disk.device == "cdrom" else disk.bus
    ET.SubElement(element, "target", dev=disk.target, bus=bus)
    if boot:
        ET.SubElement(element, "boot", order="1")
    if disk.readonly or disk.device == "cdrom":
        ET.SubElement(element, "readonly")


def _metadata(root: ET._Element, spec: DomainSpec, rbd: RbdSources | None) -> None:
    metadata = ET.SubElement(root, "metadata")
    ours = ET.SubElement(metadata, _q("instance"), nsmap={PREFIX: NAMESPACE})
    ET.SubElement(ours, _q("tenant-id")).text = spec.tenant_id
    ET.SubElement(ours, _q("instance-id")).text = spec.instance_id
    ET.SubElement(ours, _q("title")).text = spec.title
    ET.SubElement(ours, _q("spec-digest")).text = spec_digest(spec, rbd)


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


def _guest_agent_channel(devices: ET._Element) -> None:
    """The virtio-serial port a QEMU guest agent in the guest answers on (if the tenant runs
    one): libvirt picks the host-side socket. Through it a volume snapshot freezes the
    guest's file systems (Hypervisor.backup_attached_disk); without an agent, nothing."""
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name="org.qemu.guest_agent.0")


def build_domain_xml(spec: DomainSpec, rbd: RbdSources | None = None) -> str:
    """The libvirt domain XML of `spec` (see the module docstring); `rbd`: the sources of
    the rbd pools its disks are in."""
    _check_spec(spec)
    try:
        root = ET.Element("domain", type=spec.domain_type)
        ET.SubElement(root, "name").text = spec.name
        ET.SubElement(root, "uuid").text = domain_uuid(spec.name)
        # libvirt refuses line breaks in <title>; the exact title is in our metadata.
        ET.SubElement(root, "title").text = " ".join(spec.title.splitlines())
        _metadata(root, spec, rbd)
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
            _disk(devices, disk, boot=disk is boot_disk, rbd=rbd)
        if any(d.bus == "scsi" or (d.device == "cdrom" and d.bus == "virtio") for d in spec.disks):
            ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
        for nic in spec.nics:
            devices.append(_interface(nic))
        _console(devices, spec.console_log)
        _guest_agent_channel(devices)
        ET.SubElement(devices, "memballoon", model="none")
    except ValueError as exc:  # lxml: a value that XML cannot carry (NUL, control chars)
        raise DriverError(f"domain {spec.name!r}: {exc}") from exc
    return ET.tostring(root, encoding="unicode")


def _interface(nic: NicSpec) -> ET._Element:
    if nic.network is not None:
        interface = ET.Element("interface", type="network")
        ET.SubElement(interface, "mac", address=nic.mac.lower())
        ET.SubElement(interface, "source", network=nic.network)
        ET.SubElement(interface, "model", type=nic.model)
        if nic.filter_name:
            ET.SubElement(interface, "filterref", filter=nic.filter_name)
        return interface
    interface = ET.Element("interface", type="bridge")
    ET.SubElement(interface, "mac", address=nic.mac.lower())
    ET.SubElement(interface, "source", bridge=str(nic.bridge))
    virtualport = ET.SubElement(interface, "virtualport", type="openvswitch")
    ET.SubElement(virtualport, "parameters", interfaceid=str(uuid.UUID(str(nic.interface_id))))
    if nic.target_dev:
        ET.SubElement(interface, "target", dev=nic.target_dev)
    ET.SubElement(interface, "model", type=nic.model)
    if nic.csum_off:
        driver = ET.SubElement(interface, "driver")
        ET.SubElement(driver, "host", csum="off")
    if nic.mtu:
        ET.SubElement(interface, "mtu", size=str(nic.mtu))
    return interface


def interface_xml(nic: NicSpec) -> str:
    """The ``<interface>`` device XML of one NIC (for hot-plug), as in a domain's XML."""
    check_nic(nic)
    try:
        return ET.tostring(_interface(nic), encoding="unicode")
    except ValueError as exc:
        raise DriverError(f"NIC {nic.mac}: {exc}") from exc


def disk_xml(disk: DiskSpec, rbd: RbdSource | None = None) -> str:
    """The ``<disk>`` device XML of one disk (for hot-plug), as in a domain's XML (never
    the boot disk: a hot-plugged disk has no boot order); `rbd`: the source of its pool if
    that is an rbd pool."""
    check_disk(disk)
    if disk.device != "disk" or disk.bus != "virtio":
        # IDE and SATA have no hot-plug; SCSI would need a controller the domain may lack.
        raise DriverError(f"disk {disk.target}: only virtio disks are attached to a domain")
    holder = ET.Element("devices")
    try:
        _disk(holder, disk, boot=False, rbd={disk.pool: rbd} if rbd else None)
        return ET.tostring(holder[0], encoding="unicode")
    except ValueError as exc:
        raise DriverError(f"disk {disk.target}: {exc}") from exc


def find_disk(xml: str | bytes, target: str) -> ET._Element | None:
    """The ``<disk>`` element at this target (``vdb``) in a domain's XML, if any."""
    for disk in _parse(xml).iterfind("devices/disk"):
        element = disk.find("target")
        if element is not None and element.get("dev") == target:
            return disk
    return None


def disk_source(disk: ET._Element) -> tuple[str | None, str | None, str | None]:
    """What a disk element holds, to compare it with a spec: (pool, volume, file); a
    ``type='volume'`` disk names its pool and volume (libvirt keeps them in the live XML
    too), a ``type='file'`` one its file, an rbd network disk its RADOS pool (not the
    libvirt pool's name: compare with `RbdSource.pool`) and its image (the volume)."""
    source = disk.find("source")
    if source is None:
        return (None, None, None)
    if disk.get("type") == "network" and source.get("protocol") == "rbd":
        rados_pool, _, image = (source.get("name") or "").partition("/")
        return (rados_pool, image, None)
    return (source.get("pool"), source.get("volume"), source.get("file"))


def find_interface(xml: str | bytes, mac: str) -> ET._Element | None:
    """The ``<interface>`` element with this MAC in a domain's XML, if any."""
    wanted = mac.lower()
    for interface in _parse(xml).iterfind("devices/interface"):
        element = interface.find("mac")
        if element is not None and (element.get("address") or "").lower() == wanted:
            return interface
    return None


def attachment_of(interface: ET._Element) -> tuple[str, str | None, str | None]:
    """What a NIC is plugged into, to compare an existing NIC with a spec: (``network``,
    network name, None) or (``bridge``, bridge name, OVS interface id)."""
    source = interface.find("source")
    if interface.get("type") == "network":
        return ("network", None if source is None else source.get("network"), None)
    parameters = interface.find("virtualport/parameters")
    interface_id = None if parameters is None else parameters.get("interfaceid")
    return ("bridge", None if source is None else source.get("bridge"), interface_id)


def nic_attachment(nic: NicSpec) -> tuple[str, str | None, str | None]:
    """`attachment_of` for a spec."""
    if nic.network is not None:
        return ("network", nic.network, None)
    return ("bridge", nic.bridge, str(uuid.UUID(str(nic.interface_id))))


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
