"""Hot-plugged devices in general, for nics.py and disks.py. Functions here take a live
``virDomain`` or ``virConnect`` and may raise ``libvirtError``.

A domain has up to two definitions: the live one (while it runs) and the persistent one.
Each is read and changed on its own (``VIR_DOMAIN_AFFECT_LIVE`` or ``…_CONFIG``), never
both in one call: a call cut half-way (worker killed, host timeout) leaves one place done,
and the next call sees that and does only the other. A device is found in a definition's
XML by a `Finder` (a NIC by its MAC, a disk by its target).
"""

from __future__ import annotations

from collections.abc import Callable

import libvirt
from lxml import etree as ET

#: The device element in a domain's XML, or None.
Finder = Callable[[str], "ET._Element | None"]


def definitions(dom: libvirt.virDomain) -> list[tuple[int, str]]:
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


def request_detach(conn: libvirt.virConnect, name: str, find: Finder) -> str | None:
    """Ask libvirt to remove the device from each definition that has it. The config change
    is immediate; the live one completes when the guest releases the device (see
    `still_plugged`). A refused live request (QEMU answers that an unplug of that device is
    already under way, when asked again) is returned as text, not raised: the caller waits
    for the guest either way and reports it if the guest never lets go."""
    dom = conn.lookupByName(name)
    refused = None
    for flag, xml in definitions(dom):
        existing = find(xml)
        if existing is None:
            continue
        # The device's own XML as the domain has it: libvirt matches it (MAC or target,
        # PCI address).
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


def still_plugged(conn: libvirt.virConnect, name: str, find: Finder) -> bool:
    """True while the running guest still has the device (False once off or gone)."""
    try:
        dom = conn.lookupByName(name)
        if not dom.isActive():
            return False
        return find(dom.XMLDesc(0)) is not None
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise
