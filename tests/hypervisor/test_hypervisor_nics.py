"""The NIC part of the `Hypervisor` contract (attach_nic, detach_nic), on both lanes of
test_hypervisor_contract.py. libvirt's test driver cannot attach or detach devices at all
(virDomainAttachDeviceFlags: "not supported by the connection driver"): there the test
checks that the driver says so (`Unsupported`) and that what needs no device change (a NIC
already there, a NIC not there) still keeps the contract. The real lane uses NICs on a
libvirt network (the machine's libvirtd has no Open vSwitch of ours); OVS-attached NICs are
hot-plugged into a real guest in tests/hypervisor/test_ovn_lab.py."""

from __future__ import annotations

import dataclasses
import random

import libvirt
import pytest
from lxml import etree as ET

from hypervisor.base import (
    DomainSpec,
    NetworkSpec,
    NicSpec,
    NotFound,
    SpecConflict,
    TransientError,
    Unsupported,
)
from hypervisor.libvirt import LibvirtHypervisor, domain_xml
from tests.support.hypervisor_lanes import Lane, Resources


def _xml(lane: Lane, name: str, *, live: bool) -> str:
    conn = libvirt.open(lane.uri)
    try:
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        return str(conn.lookupByName(name).XMLDesc(flags))
    finally:
        conn.close()


def _macs(lane: Lane, name: str, *, live: bool) -> list[str]:
    xml = _xml(lane, name, live=live)
    root = domain_xml._parse(xml)
    return [str(mac.get("address")) for mac in root.iterfind("devices/interface/mac")]


def _attr(element: ET._Element, path: str, name: str) -> str | None:
    found = element.find(path)
    assert found is not None, f"no {path} in the interface"
    return found.get(name)


def _network(res: Resources, lane: Lane) -> str:
    """A libvirt network the NICs can be on: an isolated one of this test on the real lane
    (a random /28 of 198.51.100.0/24, so a concurrent run's networks do not collide), the
    fake's built-in ``default`` on the test lane."""
    if not lane.real:
        return "default"
    base = 16 * random.randrange(16)
    return res.network(NetworkSpec(res.name("net"), res.bridge(), f"198.51.100.{base + 1}/28"))


def _guest(res: Resources, lane: Lane, nics: tuple[NicSpec, ...]) -> DomainSpec:
    """A guest with no disk: on the real lane SeaBIOS (then the NIC's boot ROM) runs, and
    nothing in it answers an ACPI hot-unplug request."""
    return DomainSpec(
        name=res.domain(),
        title="a guest with NICs",
        tenant_id="tenant-nics",
        instance_id="instance-nics",
        vcpus=1,
        memory_mb=32,
        disks=(),
        nics=nics,
        domain_type=lane.domain_type,
    )


def test_attach_and_detach_are_idempotent_and_persisted(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    network = _network(res, lane)
    first = NicSpec(network=network, mac="52:54:00:0a:00:01")
    spec = _guest(res, lane, (first,))
    hypervisor.define_domain(spec)

    hypervisor.attach_nic(spec.name, first)  # already there, same attachment: no-op
    with pytest.raises(SpecConflict):  # the same MAC on another network
        hypervisor.attach_nic(spec.name, dataclasses.replace(first, network=f"{network}-other"))
    hypervisor.detach_nic(spec.name, "52:54:00:0a:00:99")  # no such NIC: no-op
    with pytest.raises(NotFound):
        hypervisor.attach_nic(res.name("missing"), first)
    with pytest.raises(NotFound):
        hypervisor.detach_nic(res.name("missing"), first.mac)
    assert _macs(lane, spec.name, live=False) == [first.mac]

    second = NicSpec(network=network, mac="52:54:00:0a:00:02")
    if not lane.real:
        with pytest.raises(Unsupported):
            hypervisor.attach_nic(spec.name, second)
        with pytest.raises(Unsupported):
            hypervisor.detach_nic(spec.name, first.mac)
        return

    # Shut off: the definition alone changes, once however often we ask.
    hypervisor.attach_nic(spec.name, second)
    hypervisor.attach_nic(spec.name, second)
    assert _macs(lane, spec.name, live=False) == [first.mac, second.mac]

    # Running: hot-plugged into the guest and kept in the definition.
    hypervisor.start_domain(spec.name)
    third = NicSpec(network=network, mac="52:54:00:0a:00:03")
    hypervisor.attach_nic(spec.name, third)
    hypervisor.attach_nic(spec.name, third)
    assert _macs(lane, spec.name, live=True) == [first.mac, second.mac, third.mac]
    assert _macs(lane, spec.name, live=False) == [first.mac, second.mac, third.mac]

    # This guest never releases a hot-unplugged device: the definition loses the NIC at
    # once, the running guest keeps it, and the driver says so instead of pretending.
    with pytest.raises(TransientError, match="has not released it"):
        hypervisor.detach_nic(spec.name, third.mac, timeout_seconds=1)
    assert third.mac not in _macs(lane, spec.name, live=False)
    assert third.mac in _macs(lane, spec.name, live=True)
    with pytest.raises(TransientError):  # asked again: waits again, still honest
        hypervisor.detach_nic(spec.name, third.mac, timeout_seconds=1)

    hypervisor.destroy_domain(spec.name)
    hypervisor.detach_nic(spec.name, third.mac)  # off: nothing of it left anywhere
    hypervisor.detach_nic(spec.name, second.mac)
    hypervisor.detach_nic(spec.name, second.mac)
    assert _macs(lane, spec.name, live=False) == [first.mac]


def test_an_ovs_nic_is_described_by_its_port(hypervisor: LibvirtHypervisor, res: Resources) -> None:
    """What libvirt keeps of an OVS-attached NIC in a (shut off) definition: the bridge, the
    OVN port's UUID, our tap name, the MTU and the host-side checksum setting."""
    port = "2f3b6a2c-1d9e-4a47-9b33-3a0a1b2c3d4e"
    nic = NicSpec.on_ovs(
        bridge="br-int", interface_id=port, mac="0a:00:00:00:01:11", mtu=1442, csum_off=True
    )
    spec = _guest(res, res.lane, (nic,))
    hypervisor.define_domain(spec)
    interface = domain_xml.find_interface(_xml(res.lane, spec.name, live=False), nic.mac)
    assert interface is not None
    assert interface.get("type") == "bridge"
    assert _attr(interface, "source", "bridge") == "br-int"
    assert _attr(interface, "virtualport", "type") == "openvswitch"
    assert _attr(interface, "virtualport/parameters", "interfaceid") == port
    assert _attr(interface, "target", "dev") == "tap2f3b6a2c1d9"
    assert _attr(interface, "mtu", "size") == "1442"
    assert _attr(interface, "driver/host", "csum") == "off"
    hypervisor.attach_nic(spec.name, nic)  # the same port: no-op
    other_port = dataclasses.replace(nic, interface_id="7c0e1b1e-8f5e-4c1b-a3c2-0d1e2f3a4b5c")
    with pytest.raises(SpecConflict):
        hypervisor.attach_nic(spec.name, other_port)
