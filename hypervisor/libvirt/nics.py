"""Hot-plug of NICs, for `LibvirtHypervisor.attach_nic` / `detach_nic` (contracts in
hypervisor/base.py). Functions here take a live ``virConnect`` and may raise ``libvirtError``.
Each definition of the domain is changed on its own (devices.py). A NIC is known by its MAC.
"""

from __future__ import annotations

import libvirt

from hypervisor.base import NicSpec, SpecConflict
from hypervisor.libvirt import domain_xml
from hypervisor.libvirt.devices import Finder, definitions


def attach(conn: libvirt.virConnect, name: str, nic: NicSpec, device_xml: str) -> None:
    dom = conn.lookupByName(name)
    want = domain_xml.nic_attachment(nic)
    for flag, xml in definitions(dom):
        existing = domain_xml.find_interface(xml, nic.mac)
        if existing is None:
            dom.attachDeviceFlags(device_xml, flag)
        elif domain_xml.attachment_of(existing) != want:
            raise SpecConflict(
                f"domain {name!r} has a NIC {nic.mac} attached to "
                f"{domain_xml.attachment_of(existing)}, not {want}"
            )


def finder(mac: str) -> Finder:
    """Finds the NIC with this MAC (devices.request_detach, devices.still_plugged)."""
    return lambda xml: domain_xml.find_interface(xml, mac)
