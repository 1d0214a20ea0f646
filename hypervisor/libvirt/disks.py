"""Hot-plug of disks (attached volumes), for `LibvirtHypervisor.attach_disk`, `detach_disk`
and `resize_attached_disk` (contracts in hypervisor/base.py). Functions here take a live
``virConnect`` and may raise ``libvirtError``. As for NICs, each definition of the domain is
changed on its own (devices.py). A disk is known by its target (``vdb``); what it holds by
its pool and volume.
"""

from __future__ import annotations

import libvirt

from hypervisor.base import DiskSpec, DriverError, NotFound, SpecConflict
from hypervisor.libvirt import domain_xml
from hypervisor.libvirt.devices import Finder, definitions


def attach(conn: libvirt.virConnect, name: str, disk: DiskSpec, device_xml: str) -> None:
    dom = conn.lookupByName(name)
    for flag, xml in definitions(dom):
        existing = domain_xml.find_disk(xml, disk.target)
        if existing is None:
            dom.attachDeviceFlags(device_xml, flag)
            continue
        held = domain_xml.disk_source(existing)
        if held[:2] != (disk.pool, disk.volume):
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
