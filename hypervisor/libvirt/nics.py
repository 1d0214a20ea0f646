"""Hot-plug of NICs, for `LibvirtHypervisor.attach_nic` / `detach_nic` (contracts in
hypervisor/base.py). Functions here take a live ``virConnect`` and may raise ``libvirtError``.

A domain has up to two definitions: the live one (while it runs) and the persistent one.
Each is read and changed on its own (``VIR_DOMAIN_AFFECT_LIVE`` or ``…_CONFIG``), never
both in one call: a call cut half-way (worker killed, host timeout) leaves one place done,
and the next call sees that and does only the other. A NIC is known by its MAC.
"""

from __future__ import annotations

import libvirt
from lxml import etree as ET

from hypervisor.base import NicSpec, SpecConflict
from hypervisor.libvirt import domain_xml


def _places(dom: libvirt.virDomain) -> list[tuple[int, str]]:
    """(flag, XML) of each definition the domain has now: live while it runs, config while
    it is persistent (a transient domain has no config)."""
    places = []
    if dom.isActive():
        places.append((libvirt.VIR_DOMAIN_AFFECT_LIVE, dom.XMLDesc(0)))
    if dom.isPersistent():
        places.append(
            (libvirt.VIR_DOMAIN_AFFECT_CONFIG, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        )
    return places


def attach(conn: libvirt.virConnect, name: str, nic: NicSpec, device_xml: str) -> None:
    dom = conn.lookupByName(name)
    want = domain_xml.nic_attachment(nic)
    for flag, xml in _places(dom):
        existing = domain_xml.find_interface(xml, nic.mac)
        if existing is None:
            dom.attachDeviceFlags(device_xml, flag)
        elif domain_xml.attachment_of(existing) != want:
            raise SpecConflict(
                f"domain {name!r} has a NIC {nic.mac} attached to "
                f"{domain_xml.attachment_of(existing)}, not {want}"
            )


def request_detach(conn: libvirt.virConnect, name: str, mac: str) -> str | None:
    """Ask libvirt to remove the NIC from each definition that has it. The config change is
    immediate; the live one completes when the guest releases the device (see
    `still_plugged`). A refused live request (QEMU answers that an unplug of that device is
    already under way, when asked again) is returned as text, not raised: the caller waits
    for the guest either way and reports it if the guest never lets go."""
    dom = conn.lookupByName(name)
    refused = None
    for flag, xml in _places(dom):
        existing = domain_xml.find_interface(xml, mac)
        if existing is None:
            continue
        # The NIC's own XML as the domain has it: libvirt matches it (MAC, PCI address).
        device = ET.tostring(existing, encoding="unicode")
        try:
            dom.detachDeviceFlags(device, flag)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_DEVICE_MISSING:
                continue  # gone meanwhile: done
            if flag != libvirt.VIR_DOMAIN_AFFECT_LIVE:
                raise
            refused = str(exc)
    return refused


def still_plugged(conn: libvirt.virConnect, name: str, mac: str) -> bool:
    """True while the running guest still has the NIC (False once off or gone)."""
    try:
        dom = conn.lookupByName(name)
        if not dom.isActive():
            return False
        return domain_xml.find_interface(dom.XMLDesc(0), mac) is not None
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise
