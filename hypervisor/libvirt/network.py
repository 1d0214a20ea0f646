"""Isolated libvirt networks: a bridge with an address for the host, dnsmasq for DHCP with a
range and static MAC → IP entries, and no ``<forward>`` (guest traffic never leaves the
bridge). DNS is off: the control plane hands out addresses, nothing resolves names yet.
Functions here take a live ``virConnect`` and may raise ``libvirtError``.

Leases are added live with ``virNetworkUpdate`` (no restart, guests keep their links). A
lease whose MAC or address is already used by another entry replaces that entry: the control
plane's IPAM is the source of truth, and dnsmasq refuses contradictory entries.
"""

from __future__ import annotations

import ipaddress
import re

import libvirt
from lxml import etree as ET

from hypervisor.base import DriverError, NetworkSpec, SpecConflict, StaticLease
from hypervisor.libvirt.connection import is_dead_connection
from hypervisor.libvirt.domain_xml import check_name

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_BRIDGE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _parse(xml: str) -> ET._Element:
    parser = ET.XMLParser(resolve_entities=False, no_network=True)
    return ET.fromstring(xml.encode(), parser)


def _interface(spec: NetworkSpec) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(spec.gateway_cidr)
    except ValueError as exc:
        raise DriverError(f"network {spec.name!r}: {exc}") from exc


def _check(spec: NetworkSpec) -> None:
    check_name("network", spec.name)
    if not _BRIDGE_RE.match(spec.bridge):
        raise DriverError(f"network {spec.name!r}: bad bridge name {spec.bridge!r}")
    subnet = _interface(spec).network
    addresses = [spec.dhcp_start, spec.dhcp_end, *(lease.ip for lease in spec.leases)]
    for address in addresses:
        if address is not None and ipaddress.ip_address(address) not in subnet:
            raise DriverError(f"network {spec.name!r}: {address} is not in {subnet}")
    if (spec.dhcp_start is None) != (spec.dhcp_end is None):
        raise DriverError(f"network {spec.name!r}: give both ends of the DHCP range")
    for lease in spec.leases:
        if not _MAC_RE.match(lease.mac.lower()):
            raise DriverError(f"network {spec.name!r}: not a MAC address: {lease.mac!r}")


def _host_element(lease: StaticLease) -> ET._Element:
    attributes = {"mac": lease.mac.lower(), "ip": lease.ip}
    if lease.hostname:
        attributes["name"] = lease.hostname
    return ET.Element("host", attributes)


def network_xml(spec: NetworkSpec) -> str:
    _check(spec)
    interface = _interface(spec)
    root = ET.Element("network")
    ET.SubElement(root, "name").text = spec.name
    ET.SubElement(root, "bridge", name=spec.bridge, stp="on", delay="0")
    ET.SubElement(root, "dns", enable="no")
    ip = ET.SubElement(
        root, "ip", address=str(interface.ip), prefix=str(interface.network.prefixlen)
    )
    dhcp = ET.SubElement(ip, "dhcp")
    if spec.dhcp_start is not None and spec.dhcp_end is not None:
        ET.SubElement(dhcp, "range", start=spec.dhcp_start, end=spec.dhcp_end)
    for lease in spec.leases:
        dhcp.append(_host_element(lease))
    return ET.tostring(root, encoding="unicode")


def _check_same(network: libvirt.virNetwork, spec: NetworkSpec) -> ET._Element:
    have = _parse(network.XMLDesc(0))
    bridge = have.find("bridge")
    ip = have.find("ip")
    want = _interface(spec)
    problems = []
    if have.find("forward") is not None:
        problems.append("forwarding")
    if bridge is None or bridge.get("name") != spec.bridge:
        problems.append(f"bridge {None if bridge is None else bridge.get('name')}")
    if ip is None:
        problems.append("no address")
    else:
        prefix = ip.get("prefix") or ip.get("netmask") or "32"
        if ipaddress.ip_interface(f"{ip.get('address')}/{prefix}") != want:
            problems.append(f"address {ip.get('address')}/{prefix}")
    if problems:
        raise SpecConflict(f"network {spec.name!r} exists with {', '.join(problems)}")
    return have


def _add_leases(network: libvirt.virNetwork, have: ET._Element, spec: NetworkSpec) -> None:
    hosts = have.findall("ip/dhcp/host")
    flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
    if network.isActive():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
    for lease in spec.leases:
        mac = lease.mac.lower()
        if any((h.get("mac") or "").lower() == mac and h.get("ip") == lease.ip for h in hosts):
            continue
        for stale in hosts:
            if (stale.get("mac") or "").lower() == mac or stale.get("ip") == lease.ip:
                network.update(
                    libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                    libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                    -1,
                    ET.tostring(stale, encoding="unicode"),
                    flags,
                )
        network.update(
            libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            ET.tostring(_host_element(lease), encoding="unicode"),
            flags,
        )
        hosts = _parse(network.XMLDesc(0)).findall("ip/dhcp/host")


def ensure_network(conn: libvirt.virConnect, spec: NetworkSpec) -> None:
    xml = network_xml(spec)
    try:
        network = conn.networkLookupByName(spec.name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
            raise
        try:
            network = conn.networkDefineXML(xml)
        except libvirt.libvirtError as failed:
            if is_dead_connection(failed):
                raise  # not "no such network": the driver reconnects and runs the call again
            try:  # defined meanwhile by a concurrent run of the same step?
                network = conn.networkLookupByName(spec.name)
            except libvirt.libvirtError:
                raise exc from None
    have = _check_same(network, spec)
    _add_leases(network, have, spec)
    if not network.isActive():
        try:
            network.create()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or not network.isActive():
                raise
    if network.isPersistent() and not network.autostart():
        network.setAutostart(1)


def delete_network(conn: libvirt.virConnect, name: str) -> None:
    check_name("network", name)
    try:
        network = conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return
        raise
    try:
        if network.isActive():
            network.destroy()
        if network.isPersistent():
            network.undefine()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
            raise
