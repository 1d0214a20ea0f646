"""The domain XML builder on its own (no libvirt): tenant-influenced strings stay data, and
the devices are the ones the driver documents. test_hypervisor_contract.py checks the same
through libvirt."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from lxml import etree as ET

from hypervisor.base import DiskSpec, DomainSpec, DriverError, NicSpec
from hypervisor.libvirt import domain_xml

NASTY = "evil<x a='1'/>&amp;]]>\"'</name><name><!-- -->"
NASTY_NAME = "evil<name a='1'>&amp;]]>\"'<![CDATA[x]]>"


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


def test_metadata_parses_from_the_domain_and_from_get_metadata() -> None:
    # virDomainGetMetadata gives our element back without its namespace.
    bare = "<instance><tenant-id>t</tenant-id><instance-id>i</instance-id></instance>"
    meta = domain_xml.parse_metadata(bare)
    assert meta is not None
    assert (meta.tenant_id, meta.instance_id, meta.title) == ("t", "i", None)
    assert domain_xml.parse_metadata("<domain><name>x</name></domain>") is None
