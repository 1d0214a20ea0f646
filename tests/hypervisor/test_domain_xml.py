"""The domain XML builder on its own (no libvirt): tenant-influenced strings stay data, and
the devices are the ones the driver documents. test_hypervisor_contract.py checks the same
through libvirt."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid

import pytest
from lxml import etree as ET

from hypervisor.base import DiskSpec, DomainSpec, DriverError, NicSpec
from hypervisor.libvirt import domain_xml

NASTY = "evil<x a='1'/>&amp;]]>\"'</name><name><!-- -->"
NASTY_NAME = "evil<name a='1'>&amp;]]>\"'<![CDATA[x]]>"


PORT = "f3eb9dcc-82a1-4c55-9d0e-6a7b8c9d0e1f"
OVS_NIC = NicSpec.on_ovs(
    bridge="br-int", interface_id=PORT, mac="0a:00:00:00:01:11", mtu=1442, csum_off=True
)


def spec(**changes: object) -> DomainSpec:
    base = DomainSpec(
        name="0b7e4c3e-5b1a-4d59-9f0e-3f5f4f7d7a10",
        title="web server",
        tenant_id="tenant-1",
        instance_id="instance-1",
        vcpus=2,
        memory_mb=256,
        disks=(
            DiskSpec(pool="disks", volume="root.qcow2", target="vda"),
            DiskSpec(pool="disks", volume="seed.iso", target="sda", device="cdrom", format="raw"),
        ),
        nics=(NicSpec(network="net-1", mac="52:54:00:12:34:56", filter_name="sg-1"),),
        domain_type="qemu",
        console_log="/var/log/andromede/console.log",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def evil_spec() -> DomainSpec:
    return spec(
        name=NASTY_NAME,
        title=NASTY,
        tenant_id=NASTY,
        instance_id=NASTY,
        disks=(
            DiskSpec(pool=NASTY_NAME, volume=NASTY_NAME, target="vda"),
            DiskSpec(pool="p", volume=NASTY_NAME + "2", target="sda", device="cdrom"),
        ),
        nics=(NicSpec(network=NASTY, mac="52:54:00:12:34:56", filter_name=NASTY),),
        console_log="/var/log/" + NASTY,
    )


def shape(root: ET._Element) -> list[tuple[str, tuple[str, ...]]]:
    tree = root.getroottree()
    return sorted((tree.getpath(e), tuple(sorted(e.attrib))) for e in root.iter())


def test_markup_in_names_titles_and_ids_stays_text() -> None:
    evil = evil_spec()
    xml = domain_xml.build_domain_xml(evil)
    root = ET.fromstring(xml.encode())  # it parses
    plain = ET.fromstring(domain_xml.build_domain_xml(spec()).encode())
    assert shape(root) == shape(plain)  # no element or attribute more or less

    assert root.findtext("name") == NASTY_NAME
    assert root.findtext("title") == NASTY
    meta = domain_xml.parse_metadata(xml)
    assert meta is not None
    assert (meta.tenant_id, meta.instance_id, meta.title) == (NASTY, NASTY, NASTY)
    sources = [s.attrib for s in root.iterfind("devices/disk/source")]
    assert sources[0] == {"pool": NASTY_NAME, "volume": NASTY_NAME}
    assert root.find("devices/interface/source").get("network") == NASTY
    assert root.find("devices/interface/filterref").get("filter") == NASTY
    assert domain_xml.console_log_path(xml) == "/var/log/" + NASTY
    assert root.xpath("//comment() | //processing-instruction()") == []  # none smuggled in


def test_the_devices_are_as_documented() -> None:
    root = ET.fromstring(domain_xml.build_domain_xml(spec()).encode())
    assert root.get("type") == "qemu"
    assert root.findtext("uuid") == "0b7e4c3e-5b1a-4d59-9f0e-3f5f4f7d7a10"  # the name itself
    assert (root.findtext("memory"), root.find("memory").get("unit"), root.findtext("vcpu")) == (
        "256",
        "MiB",
        "2",
    )
    vda, cdrom = root.findall("devices/disk")
    assert (vda.get("type"), vda.find("driver").get("type")) == ("volume", "qcow2")
    assert vda.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    assert vda.find("boot").get("order") == "1"
    assert vda.find("readonly") is None
    # A CD-ROM on the paravirtual bus is a virtio-scsi one, read-only.
    assert cdrom.find("target").attrib == {"dev": "sda", "bus": "scsi"}
    assert cdrom.find("readonly") is not None
    assert cdrom.find("boot") is None
    assert root.find("devices/controller").attrib == {
        "type": "scsi",
        "index": "0",
        "model": "virtio-scsi",
    }
    nic = root.find("devices/interface")
    assert nic.get("type") == "network"
    assert nic.find("mac").get("address") == "52:54:00:12:34:56"
    assert nic.find("model").get("type") == "virtio"
    for device in ("serial", "console"):
        element = root.find(f"devices/{device}")
        assert element.get("type") == "file"
        assert element.find("source").get("path") == "/var/log/andromede/console.log"


def test_an_ide_cdrom_and_a_pty_console() -> None:
    root = ET.fromstring(
        domain_xml.build_domain_xml(
            spec(
                disks=(DiskSpec("p", "seed", "hdc", device="cdrom", bus="ide", format="raw"),),
                console_log=None,
            )
        ).encode()
    )
    assert root.find("devices/disk/target").attrib == {"dev": "hdc", "bus": "ide"}
    assert root.find("devices/controller") is None
    assert root.find("os/type").get("machine") == "pc"  # i440fx: it has IDE
    assert root.find("devices/serial").get("type") == "pty"


def test_a_title_with_line_breaks_is_one_line_in_title_and_exact_in_metadata() -> None:
    xml = domain_xml.build_domain_xml(spec(title="two\nlines"))
    assert ET.fromstring(xml.encode()).findtext("title") == "two lines"
    meta = domain_xml.parse_metadata(xml)
    assert meta is not None
    assert meta.title == "two\nlines"


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "a/b"},
        {"name": ".."},
        {"name": ""},
        {"name": "tab\there"},
        {"title": "nul\x00byte"},
        {"disks": (DiskSpec("p", "../etc", "vda"),)},
        {"disks": (DiskSpec("p", "v", "vda"), DiskSpec("p", "w", "vda"))},
        {"disks": (DiskSpec("p", "v", "vda", bus="usb"),)},
        {"nics": (NicSpec("n", "not-a-mac"),)},
        {"nics": (NicSpec(None, "52:54:00:12:34:56"),)},  # neither network nor bridge
        {"nics": (NicSpec("n", "52:54:00:12:34:56", bridge="br-int", interface_id=PORT),)},
        {"nics": (NicSpec(None, "52:54:00:12:34:56", bridge="br-int", interface_id="lsp-1"),)},
        {"nics": (NicSpec(None, "52:54:00:12:34:56", bridge="br-int"),)},
        {"nics": (dataclasses.replace(OVS_NIC, target_dev="vnet7"),)},  # libvirt's own
        {"nics": (dataclasses.replace(OVS_NIC, target_dev="tap-much-too-long0"),)},
        {"nics": (dataclasses.replace(OVS_NIC, mtu=20),)},
        {"nics": (dataclasses.replace(OVS_NIC, filter_name="sg-1"),)},
        {"nics": (NicSpec("n", "52:54:00:12:34:56", mtu=1442),)},
        {"nics": (OVS_NIC, dataclasses.replace(OVS_NIC, interface_id=str(uuid.uuid4())))},
        {"vcpus": 0},
    ],
)
def test_bad_specs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(DriverError):
        domain_xml.build_domain_xml(spec(**changes))


def test_the_digest_follows_the_spec_and_uuids_are_stable() -> None:
    assert domain_xml.spec_digest(spec()) == domain_xml.spec_digest(spec())
    assert domain_xml.spec_digest(spec()) != domain_xml.spec_digest(spec(memory_mb=512))
    assert domain_xml.domain_uuid("not-a-uuid") == domain_xml.domain_uuid("not-a-uuid")
    assert uuid.UUID(domain_xml.domain_uuid("not-a-uuid")).version == 5


def test_the_digest_of_a_spec_with_old_style_nics_did_not_change() -> None:
    """Domains defined before NICs could be on OVS keep their digest: no redefinition."""
    old = spec()
    before = dataclasses.asdict(old)
    before["nics"] = [
        {"network": "net-1", "mac": "52:54:00:12:34:56", "model": "virtio", "filter_name": "sg-1"}
    ]
    blob = json.dumps(
        {"builder": domain_xml.BUILDER_VERSION, "spec": before},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    assert domain_xml.spec_digest(old) == hashlib.sha256(blob.encode()).hexdigest()
    assert domain_xml.spec_digest(spec(nics=(OVS_NIC,))) != domain_xml.spec_digest(old)
    no_csum = dataclasses.replace(OVS_NIC, csum_off=False)
    assert domain_xml.spec_digest(spec(nics=(no_csum,))) != domain_xml.spec_digest(
        spec(nics=(OVS_NIC,))
    )


def test_an_ovs_nic_is_an_openvswitch_virtualport_named_by_its_port() -> None:
    root = ET.fromstring(domain_xml.build_domain_xml(spec(nics=(OVS_NIC,))).encode())
    (interface,) = root.iterfind("devices/interface")
    assert ET.tostring(interface, encoding="unicode") == (
        '<interface type="bridge"><mac address="0a:00:00:00:01:11"/>'
        '<source bridge="br-int"/><virtualport type="openvswitch">'
        f'<parameters interfaceid="{PORT}"/></virtualport>'
        '<target dev="tapf3eb9dcc82a"/><model type="virtio"/>'
        '<driver><host csum="off"/></driver><mtu size="1442"/></interface>'
    )
    assert domain_xml.interface_xml(OVS_NIC) == ET.tostring(interface, encoding="unicode")
    assert domain_xml.attachment_of(interface) == domain_xml.nic_attachment(OVS_NIC)
    assert domain_xml.attachment_of(interface) == ("bridge", "br-int", PORT)


def test_metadata_parses_from_the_domain_and_from_get_metadata() -> None:
    # virDomainGetMetadata gives our element back without its namespace.
    bare = "<instance><tenant-id>t</tenant-id><instance-id>i</instance-id></instance>"
    meta = domain_xml.parse_metadata(bare)
    assert meta is not None
    assert (meta.tenant_id, meta.instance_id, meta.title) == ("t", "i", None)
    assert domain_xml.parse_metadata("<domain><name>x</name></domain>") is None
