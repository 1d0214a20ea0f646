"""Hot-plug of disks (attached volumes), for `LibvirtHypervisor.attach_disk`, `detach_disk`,
`resize_attached_disk` and `backup_attached_disk` (contracts in hypervisor/base.py).
Functions here take a live ``virConnect`` and may raise ``libvirtError``. As for NICs, each
definition of the domain is changed on its own (devices.py). A disk is known by its target
(``vdb``); what it holds by its pool and volume.
"""

from __future__ import annotations

import contextlib

import libvirt
from lxml import etree as ET

from hypervisor.base import DiskSpec, DriverError, NotFound, SpecConflict
from hypervisor.libvirt import domain_xml, storage
from hypervisor.libvirt.devices import Finder, definitions


def attach(conn: libvirt.virConnect, name: str, disk: DiskSpec) -> None:
    """A volume of an rbd pool goes in as a network disk naming the pool's cluster
    (domain_xml), read from the pool's definition on this host."""
    dom = conn.lookupByName(name)
    rbd = storage.rbd_sources(conn, {disk.pool}).get(disk.pool)
    device_xml = domain_xml.disk_xml(disk, rbd)
    wanted = (disk.pool if rbd is None else rbd.pool, disk.volume)
    for flag, xml in definitions(dom):
        existing = domain_xml.find_disk(xml, disk.target)
        if existing is None:
            dom.attachDeviceFlags(device_xml, flag)
            continue
        held = domain_xml.disk_source(existing)
        if held[:2] != wanted:
            raise SpecConflict(
                f"domain {name!r} has another disk at {disk.target}: "
                f"{held[1] or held[2]!r}, not {disk.volume!r}"
            )


def finder(target: str) -> Finder:
    """Finds the disk at this target (devices.request_detach, devices.still_plugged)."""
    return lambda xml: domain_xml.find_disk(xml, target)


def resize(conn: libvirt.virConnect, name: str, target: str, capacity_bytes: int) -> bool:
    """virDomainBlockResize on a running domain (see `Hypervisor.resize_attached_disk`)."""
    dom = conn.lookupByName(name)
    if not dom.isActive():
        return False
    if domain_xml.find_disk(dom.XMLDesc(0), target) is None:
        raise NotFound(f"domain {name!r} has no disk at {target}")
    capacity = int(dom.blockInfo(target, 0)[0])
    if capacity > capacity_bytes:
        raise DriverError(
            f"disk {target} of domain {name!r} has {capacity} bytes; it cannot shrink to "
            f"{capacity_bytes}"
        )
    if capacity < capacity_bytes:
        dom.blockResize(target, capacity_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
    return True


# --- Point-in-time copies of attached disks (libvirt's backup API, push mode) ---------------


def _pool_path(conn: libvirt.virConnect, pool: str) -> str:
    root = ET.fromstring(storage.lookup_pool(conn, pool).XMLDesc(0).encode())
    path = root.findtext("target/path")
    if not path:
        raise DriverError(f"pool {pool!r} has no directory: a backup is written to a file")
    return path


def backup_xml(target: str, others: list[str], path: str) -> str:
    """A push-mode backup of the disk at `target` into the qcow2 file `path`; every other
    disk of the domain is named with backup='no' (left out, it would be backed up too)."""
    root = ET.Element("domainbackup", mode="push")
    listed = ET.SubElement(root, "disks")
    disk = ET.SubElement(listed, "disk", name=target, backup="yes", type="file")
    ET.SubElement(disk, "target", file=path)
    ET.SubElement(disk, "driver", type="qcow2")
    for other in others:
        ET.SubElement(listed, "disk", name=other, backup="no")
    return ET.tostring(root, encoding="unicode")


def _backup_running(dom: libvirt.virDomain) -> bool:
    try:
        dom.backupGetXMLDesc(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (
            libvirt.VIR_ERR_NO_DOMAIN_BACKUP,
            libvirt.VIR_ERR_OPERATION_INVALID,
        ):
            return False
        raise
    return True


#: libvirt's answers when no guest agent can freeze: none configured (no channel), none
#: connected or answering in time, or a hypervisor without the call.
_NO_AGENT = frozenset(
    {
        libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
        libvirt.VIR_ERR_AGENT_UNSYNCED,
        libvirt.VIR_ERR_NO_SUPPORT,
        libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    }
)


def freeze_filesystems(conn: libvirt.virConnect, name: str, agent_timeout: int) -> bool:
    """Ask the running domain's guest agent to freeze its file systems (waiting at most
    `agent_timeout` seconds for it): True when at least one is frozen; False when no agent
    answers or the domain is not running (nothing frozen)."""
    dom = conn.lookupByName(name)
    if not dom.isActive():
        return False
    with contextlib.suppress(libvirt.libvirtError):  # older hypervisors: their own default
        dom.agentSetResponseTimeout(agent_timeout, 0)
    try:
        return bool(dom.fsFreeze(None, 0) > 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in _NO_AGENT:
            return False
        raise


def thaw_filesystems(conn: libvirt.virConnect, name: str) -> None:
    """Thaw what `freeze_filesystems` froze; nothing frozen, no agent or domain: a no-op."""
    with contextlib.suppress(libvirt.libvirtError):
        conn.lookupByName(name).fsThaw(None, 0)


def backup_begin(conn: libvirt.virConnect, name: str, target: str, pool: str, volume: str) -> bool:
    """Start copying the running domain's disk at `target` into `volume` of `pool` (see
    `Hypervisor.backup_attached_disk`). False, nothing done, when the domain is not
    running. A backup job left by an interrupted caller is aborted first (one job at a time
    per domain)."""
    dom = conn.lookupByName(name)
    if not dom.isActive():
        return False
    xml = dom.XMLDesc(0)
    if domain_xml.find_disk(xml, target) is None:
        raise NotFound(f"domain {name!r} has no disk at {target}")
    if _backup_running(dom):
        dom.abortJob()
    others = [
        element.get("dev", "")
        for element in ET.fromstring(xml.encode()).iterfind("devices/disk/target")
        if element.get("dev") != target
    ]
    path = f"{_pool_path(conn, pool)}/{volume}"
    dom.backupBegin(backup_xml(target, others, path), None, 0)
    return True


def backup_outcome(conn: libvirt.virConnect, name: str) -> str | None:
    """None while the domain's backup job runs; "" once it succeeded; the reason once it
    failed."""
    dom = conn.lookupByName(name)
    if _backup_running(dom):
        return None
    stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    if stats.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP:
        return "the backup job's outcome is unknown (the domain reports no completed backup)"
    if stats.get("success") or stats.get("type") == libvirt.VIR_DOMAIN_JOB_COMPLETED:
        return ""
    return str(stats.get("errmsg") or "the backup job failed")


def backup_abort(conn: libvirt.virConnect, name: str) -> None:
    dom = conn.lookupByName(name)
    if _backup_running(dom):
        dom.abortJob()
