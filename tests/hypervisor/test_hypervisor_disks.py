"""The disk part of the `Hypervisor` contract (attach_disk, detach_disk,
resize_attached_disk, backup_attached_disk), on both lanes of test_hypervisor_contract.py.
libvirt's test driver (9.0 here) cannot attach, detach, resize or back up devices
(virDomainAttachDeviceFlags, virDomainBlockResize, virDomainBackupBegin: "not supported by
the connection driver"): there the test checks that the driver says so (`Unsupported`) and
that what needs no device change (a disk already there, a disk not there, a domain that is
off) still keeps the contract. A guest that sees the disk, writes to it and sees it grow is
in tests/e2e/test_volume_attach.py."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time

import libvirt
import pytest

from hypervisor.base import (
    CRASH_CONSISTENT,
    DiskSpec,
    DomainSpec,
    DriverError,
    NotFound,
    SpecConflict,
    StorageVolumeSpec,
    TransientError,
    Unsupported,
)
from hypervisor.libvirt import LibvirtHypervisor, domain_xml
from tests.support.hypervisor_lanes import Lane, Resources

MIB = 1 << 20


def _disks(lane: Lane, name: str, *, live: bool) -> dict[str, str | None]:
    """target -> volume name, of the domain's live or persistent definition."""
    conn = libvirt.open(lane.uri)
    try:
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        xml = str(conn.lookupByName(name).XMLDesc(flags))
    finally:
        conn.close()
    found = {}
    for disk in domain_xml._parse(xml).iterfind("devices/disk"):
        target = disk.find("target")
        assert target is not None
        found[str(target.get("dev"))] = domain_xml.disk_source(disk)[1]
    return found


def _guest(res: Resources, lane: Lane, disks: tuple[DiskSpec, ...]) -> DomainSpec:
    """A guest with no operating system: on the real lane SeaBIOS runs, and nothing in it
    answers an ACPI hot-unplug request."""
    return DomainSpec(
        name=res.domain(),
        title="a guest with disks",
        tenant_id="tenant-disks",
        instance_id="instance-disks",
        vcpus=1,
        memory_mb=32,
        disks=disks,
        domain_type=lane.domain_type,
    )


def test_attach_detach_and_resize_keep_the_contract(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    pool = res.pool()
    first, second, third = (
        res.volume(StorageVolumeSpec(pool, res.name("vol"), 8 * MIB)) for _ in range(3)
    )
    vdb = DiskSpec(pool=pool, volume=first, target="vdb")
    spec = _guest(res, lane, (vdb,))
    hypervisor.define_domain(spec)

    hypervisor.attach_disk(spec.name, vdb)  # already there, the same volume: no-op
    with pytest.raises(SpecConflict):  # another volume on that target
        hypervisor.attach_disk(spec.name, dataclasses.replace(vdb, volume=second))
    hypervisor.detach_disk(spec.name, "vdx")  # no disk there: no-op
    with pytest.raises(NotFound):
        hypervisor.attach_disk(res.name("missing"), vdb)
    with pytest.raises(NotFound):
        hypervisor.detach_disk(res.name("missing"), "vdb")
    with pytest.raises(DriverError):  # not a target: refused before libvirt is asked
        hypervisor.detach_disk(spec.name, "../vdb")
    assert hypervisor.resize_attached_disk(spec.name, "vdb", 16 * MIB) is False  # off
    assert _disks(lane, spec.name, live=False) == {"vdb": first}

    vdc = DiskSpec(pool=pool, volume=second, target="vdc")
    if not lane.real:
        with pytest.raises(Unsupported):
            hypervisor.attach_disk(spec.name, vdc)
        with pytest.raises(Unsupported):
            hypervisor.detach_disk(spec.name, "vdb")
        return

    # Shut off: the definition alone changes, once however often we ask.
    hypervisor.attach_disk(spec.name, vdc)
    hypervisor.attach_disk(spec.name, vdc)
    assert _disks(lane, spec.name, live=False) == {"vdb": first, "vdc": second}

    # Running: hot-plugged into the guest and kept in the definition.
    hypervisor.start_domain(spec.name)
    vdd = DiskSpec(pool=pool, volume=third, target="vdd")
    hypervisor.attach_disk(spec.name, vdd)
    hypervisor.attach_disk(spec.name, vdd)
    both = {"vdb": first, "vdc": second, "vdd": third}
    assert _disks(lane, spec.name, live=True) == both
    assert _disks(lane, spec.name, live=False) == both

    # Live resize: through QEMU, which holds the file open; the storage shows it at once.
    assert hypervisor.resize_attached_disk(spec.name, "vdd", 24 * MIB) is True
    assert hypervisor.resize_attached_disk(spec.name, "vdd", 24 * MIB) is True  # no-op
    assert hypervisor.storage_volume_info(pool, third).capacity_bytes == 24 * MIB
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-U", "--output=json",
             hypervisor.storage_volume_info(pool, third).path],
            check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    assert info["virtual-size"] == 24 * MIB
    with pytest.raises(DriverError, match="cannot shrink"):
        hypervisor.resize_attached_disk(spec.name, "vdd", 8 * MIB)
    with pytest.raises(NotFound):
        hypervisor.resize_attached_disk(spec.name, "vdx", 8 * MIB)

    # This guest never releases a hot-unplugged device: the definition loses the disk at
    # once, the running guest keeps it, and the driver says so instead of pretending.
    with pytest.raises(TransientError, match="has not released it"):
        hypervisor.detach_disk(spec.name, "vdd", timeout_seconds=1)
    assert "vdd" not in _disks(lane, spec.name, live=False)
    assert "vdd" in _disks(lane, spec.name, live=True)
    with pytest.raises(TransientError):  # asked again: waits again, still honest
        hypervisor.detach_disk(spec.name, "vdd", timeout_seconds=1)

    hypervisor.destroy_domain(spec.name)
    hypervisor.detach_disk(spec.name, "vdd")  # off: nothing of it left anywhere
    hypervisor.detach_disk(spec.name, "vdc")
    hypervisor.detach_disk(spec.name, "vdc")
    assert _disks(lane, spec.name, live=False) == {"vdb": first}


def _qemu_img_info(path: str) -> dict[str, object]:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return dict(json.loads(out))


def test_backup_of_an_attached_disk_is_a_standalone_copy_of_that_instant(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    """backup_attached_disk (volume snapshots of in-use volumes): None while the domain is
    off, NotFound for a missing domain or disk; on QEMU a standalone qcow2 holding what the
    disk held, listed in the pool; libvirt's test driver has no backup jobs: Unsupported."""
    pool = res.pool()
    source = res.volume(StorageVolumeSpec(pool, res.name("vol"), 8 * MIB))
    copy = res.name("copy")
    spec = _guest(res, lane, (DiskSpec(pool=pool, volume=source, target="vdb"),))
    hypervisor.define_domain(spec)
    assert hypervisor.backup_attached_disk(spec.name, "vdb", pool, copy) is None  # off
    with pytest.raises(NotFound):
        hypervisor.backup_attached_disk(res.name("missing"), "vdb", pool, copy)
    with pytest.raises(DriverError):  # not a target: refused before libvirt is asked
        hypervisor.backup_attached_disk(spec.name, "../vdb", pool, copy)
    if lane.real:
        path = hypervisor.storage_volume_info(pool, source).path
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", path],
                       check=True, capture_output=True)  # fmt: skip
    hypervisor.start_domain(spec.name)
    with pytest.raises(NotFound):
        hypervisor.backup_attached_disk(spec.name, "vdx", pool, copy)
    if not lane.real:
        with pytest.raises(Unsupported):
            hypervisor.backup_attached_disk(spec.name, "vdb", pool, copy)
        return

    started = time.monotonic()
    live = hypervisor.backup_attached_disk(spec.name, "vdb", pool, copy, timeout_seconds=60)
    # The test image runs no guest agent: nothing frozen, and no wait for one.
    assert live == CRASH_CONSISTENT
    assert time.monotonic() - started < 30
    made = hypervisor.storage_volume_info(pool, copy)  # listed in the pool
    info = _qemu_img_info(made.path)
    assert (info["format"], info["virtual-size"]) == ("qcow2", 8 * MIB)
    assert "backing-filename" not in info  # standalone: it outlives the volume
    # qemu-io exits 0 even when the pattern differs: its message says so.
    check = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-c", "read -P 0x5a 1M 64k",
                            made.path], check=True, capture_output=True, text=True)  # fmt: skip
    assert "Pattern verification failed" not in check.stdout + check.stderr
    hypervisor.destroy_domain(spec.name)


def test_a_disk_xml_is_a_virtio_volume_disk_without_boot_order() -> None:
    disk = DiskSpec(pool="p<&'", volume="volume-1", target="vdb")
    element = domain_xml._parse(domain_xml.disk_xml(disk))
    assert element.get("type") == "volume"
    assert domain_xml.disk_source(element) == ("p<&'", "volume-1", None)
    assert element.find("boot") is None
    for refused in (
        dataclasses.replace(disk, bus="ide"),
        dataclasses.replace(disk, device="cdrom"),
        dataclasses.replace(disk, target="vdb/.."),
    ):
        with pytest.raises(DriverError):
            domain_xml.disk_xml(refused)
