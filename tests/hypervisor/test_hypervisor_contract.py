"""The contract of `hypervisor.base.Hypervisor`, checked on `LibvirtHypervisor` against
both lanes: libvirt's in-process fake (``test:///default``) and the real libvirtd with QEMU
(marker ``hypervisor``). Where the fake cannot do something (it runs no guest code, and has
no volume upload, download, resize or wipe) the test states what the fake answers instead
(`Unsupported`), so nothing is skipped on either lane. Guests booting the real test image
are in test_real_boot.py."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from lxml import etree as ET

from hypervisor.base import (
    DomainEvent,
    DomainSpec,
    DriverError,
    NetworkSpec,
    NotFound,
    PoolSpec,
    PowerState,
    SpecConflict,
    StaticLease,
    StorageVolumeSpec,
    TransientError,
    Unsupported,
)
from hypervisor.libvirt import LibvirtHypervisor
from hypervisor.libvirt.connection import is_dead_connection
from tests.support import erasure
from tests.support.hypervisor_lanes import Lane, Resources

#: Markup in a title or an id (anything goes there).
NASTY = "evil<x a='1'/>&amp;]]>\"'</name><name>"
#: Markup in a name: everything but "/", which a name may not contain (it becomes a path).
NASTY_NAME = "evil<name a='1'>&amp;]]>\"'<![CDATA[x]]><name>"


def diskless(res: Resources, *, name: str | None = None, **changes: Any) -> DomainSpec:
    """A guest with no disk and no NIC: on the real lane SeaBIOS finds nothing to boot and
    waits, ignoring ACPI (nothing in the guest listens to the power button)."""
    spec = DomainSpec(
        name=name or res.domain(),
        title="a guest",
        tenant_id="tenant-1",
        instance_id="instance-1",
        vcpus=1,
        memory_mb=32,
        disks=(),
        domain_type=res.lane.domain_type,
    )
    return dataclasses.replace(spec, **changes)


def events_for(events: Iterator[DomainEvent], name: str, until: str | None = None) -> list[str]:
    """The kinds of `name`'s events, read until the stream's deadline or the `until` kind."""
    kinds = []
    for event in events:
        if event.domain == name:
            kinds.append(event.kind)
            if event.kind == until:
                break
    return kinds


def shape(xml: str) -> list[tuple[str, tuple[str, ...]]]:
    """Every element's path and attribute names: what markup injection would change."""
    root = ET.fromstring(xml.encode())
    tree = root.getroottree()
    return sorted((tree.getpath(e), tuple(sorted(e.attrib))) for e in root.iter())


# --- Host -------------------------------------------------------------------------------------


def test_facts_describe_the_host(hypervisor: LibvirtHypervisor, lane: Lane) -> None:
    facts = hypervisor.facts()
    assert facts.cpus > 0
    assert facts.memory_mb > 0
    assert facts.hostname
    assert re.fullmatch(r"\d+\.\d+\.\d+", facts.libvirt_version)
    assert re.fullmatch(r"\d+\.\d+\.\d+", facts.hypervisor_version)
    if lane.real:
        assert facts.arch == "x86_64"
        assert {"qemu", "kvm"} >= set(facts.domain_types) >= {"qemu"}
    else:
        assert facts.domain_types == ("test",)


def test_probe_tells_which_listed_domain_types_run(
    hypervisor: LibvirtHypervisor, lane: Lane
) -> None:
    results = {t: hypervisor.probe_domain_type(t) for t in hypervisor.facts().domain_types}
    print(f"\n{lane.name}: probe results {results}")
    assert results[lane.domain_type] is True
    assert hypervisor.probe_domain_type("xen") is False  # not listed: not even tried
    assert not [d for d in hypervisor.list_domains() if d.name.startswith("andromede-probe-")]


# --- Domains ----------------------------------------------------------------------------------


def test_define_twice_is_a_no_op_and_a_new_spec_replaces(
    hypervisor: LibvirtHypervisor, res: Resources
) -> None:
    spec = diskless(res)
    events = hypervisor.lifecycle_events(timeout_seconds=1.5)
    hypervisor.define_domain(spec)
    hypervisor.define_domain(spec)
    names = [d.name for d in hypervisor.list_domains()]
    assert names.count(spec.name) == 1
    info = hypervisor.domain_info(spec.name)
    assert (info.power_state, info.memory_mb, info.vcpus) == (PowerState.SHUTOFF, 32, 1)

    bigger = diskless(res, name=spec.name, memory_mb=48)
    hypervisor.define_domain(bigger)
    assert hypervisor.domain_info(spec.name).memory_mb == 48
    # One event for the first definition, one for the replacement, none for the repeat.
    assert events_for(events, spec.name) == ["defined", "defined"]


def test_start_destroy_power_states_metadata_and_events(
    hypervisor: LibvirtHypervisor, res: Resources
) -> None:
    spec = diskless(res, tenant_id="tenant-42", instance_id="instance-42")
    hypervisor.define_domain(spec)
    events = hypervisor.lifecycle_events(timeout_seconds=10)

    hypervisor.start_domain(spec.name)
    hypervisor.start_domain(spec.name)  # already running: no-op
    listed = {d.name: d for d in hypervisor.list_domains()}
    assert listed[spec.name].power_state == PowerState.RUNNING
    assert (listed[spec.name].tenant_id, listed[spec.name].instance_id) == (
        "tenant-42",
        "instance-42",
    )
    hypervisor.destroy_domain(spec.name)
    hypervisor.destroy_domain(spec.name)  # already off: no-op
    assert hypervisor.domain_info(spec.name).power_state == PowerState.SHUTOFF

    hypervisor.undefine_domain(spec.name)
    hypervisor.undefine_domain(spec.name)  # missing: no-op
    assert spec.name not in {d.name for d in hypervisor.list_domains()}
    kinds = events_for(events, spec.name, until="undefined")
    assert {"started", "stopped", "undefined"} <= set(kinds), kinds
    assert kinds.index("started") < kinds.index("stopped") < kinds.index("undefined"), kinds


def test_list_domains_includes_domains_we_did_not_define(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    hypervisor.facts()  # keeps the fake's state alive while the other connection comes and goes
    name = res.domain()
    foreign = ET.Element("domain", type=lane.domain_type)
    ET.SubElement(foreign, "name").text = name
    ET.SubElement(foreign, "memory", unit="MiB").text = "32"
    os_ = ET.SubElement(foreign, "os")
    ET.SubElement(os_, "type").text = "hvm"
    conn = libvirt.open(lane.uri)  # an orphan, defined behind the driver's back
    try:
        conn.defineXML(ET.tostring(foreign, encoding="unicode"))
    finally:
        conn.close()
    listed = {d.name: d for d in hypervisor.list_domains()}
    assert listed[name].power_state == PowerState.SHUTOFF
    assert (listed[name].tenant_id, listed[name].instance_id) == (None, None)


def test_a_missing_domain_is_not_found_or_a_no_op(
    hypervisor: LibvirtHypervisor, res: Resources
) -> None:
    name = res.name("missing")
    for call in (
        lambda: hypervisor.domain_info(name),
        lambda: hypervisor.start_domain(name),
        lambda: hypervisor.shutdown_domain(name, 1),
        lambda: hypervisor.reboot_domain(name),
        lambda: hypervisor.console_output(name),
    ):
        with pytest.raises(NotFound):
            call()
    hypervisor.destroy_domain(name)
    hypervisor.undefine_domain(name)


def test_shutdown_forces_off_a_guest_that_ignores_acpi(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    spec = diskless(res)
    hypervisor.define_domain(spec)
    hypervisor.start_domain(spec.name)
    started = time.monotonic()
    stopped_by_itself = hypervisor.shutdown_domain(spec.name, timeout_seconds=1.0)
    elapsed = time.monotonic() - started
    if lane.real:  # SeaBIOS with nothing to boot does not handle the power button
        assert stopped_by_itself is False
        assert elapsed >= 1.0
    else:  # libvirt's fake powers off at once on request
        assert stopped_by_itself is True
    assert hypervisor.domain_info(spec.name).power_state == PowerState.SHUTOFF
    assert hypervisor.shutdown_domain(spec.name, timeout_seconds=1.0) is True  # already off


def test_reboot_needs_a_running_domain(hypervisor: LibvirtHypervisor, res: Resources) -> None:
    spec = diskless(res)
    hypervisor.define_domain(spec)
    with pytest.raises(DriverError) as refused:
        hypervisor.reboot_domain(spec.name)
    assert not isinstance(refused.value, NotFound)
    hypervisor.start_domain(spec.name)
    hypervisor.reboot_domain(spec.name, hard=True)
    hypervisor.reboot_domain(spec.name)
    assert hypervisor.domain_info(spec.name).power_state == PowerState.RUNNING


def test_console_output_reads_the_log_back(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane, tmp_path: Path
) -> None:
    log = (lane.root / res.pool() if lane.real else tmp_path) / "console.log"
    spec = diskless(res, console_log=str(log))
    hypervisor.define_domain(spec)
    assert hypervisor.console_output(spec.name) == ""  # no log yet
    # What a guest would have written (the domain is not started: QEMU would truncate it).
    log.write_bytes(b"boot\n" + b"x" * 100 + b"\nlast line \xff\xfe end\n")
    text = hypervisor.console_output(spec.name)
    assert text.startswith("boot\n")
    assert text.endswith("last line \ufffd\ufffd end\n")
    tail = hypervisor.console_output(spec.name, max_bytes=4)
    assert tail == "end\n"
    if lane.real:  # the same, read through libvirt (the way for a remote host)
        via_pool = LibvirtHypervisor(lane.uri, read_console_from="pool")
        try:
            assert via_pool.console_output(spec.name) == text
            assert via_pool.console_output(spec.name, max_bytes=4) == "end\n"
        finally:
            via_pool.close()


def test_lifecycle_events_stop_at_their_deadline(hypervisor: LibvirtHypervisor) -> None:
    started = time.monotonic()
    events = list(hypervisor.lifecycle_events(timeout_seconds=0.3))  # (other processes' events)
    assert all(isinstance(event, DomainEvent) for event in events)
    assert 0.25 <= time.monotonic() - started < 2


# --- Storage ----------------------------------------------------------------------------------


def test_ensure_pool_is_idempotent_and_refuses_another_path(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    name = res.pool()
    path = lane.root / name
    hypervisor.ensure_pool(PoolSpec(name, str(path)))
    hypervisor.ensure_pool(PoolSpec(name, str(path) + "/"))  # the same directory
    info = hypervisor.pool_info(name)
    assert (info.name, info.path, info.active) == (name, str(path), True)
    assert info.capacity_bytes >= info.available_bytes > 0
    if lane.real:
        assert path.is_dir()
    with pytest.raises(SpecConflict):
        hypervisor.ensure_pool(PoolSpec(name, str(lane.root / "elsewhere")))
    with pytest.raises(DriverError):
        hypervisor.ensure_pool(PoolSpec(res.name("pool"), "relative/path"))
    with pytest.raises(NotFound):
        hypervisor.pool_info(res.name("nopool"))


def test_create_volume_is_idempotent_and_refuses_another_spec(
    hypervisor: LibvirtHypervisor, res: Resources
) -> None:
    pool = res.pool()
    spec = StorageVolumeSpec(pool, res.name("vol"), 8 << 20)
    res.volumes.append((pool, spec.name))
    first = hypervisor.create_storage_volume(spec)
    assert (first.name, first.capacity_bytes, first.format) == (spec.name, 8 << 20, "qcow2")
    assert first.path.endswith("/" + spec.name)
    assert hypervisor.create_storage_volume(spec) == hypervisor.storage_volume_info(pool, spec.name)
    for other in (
        StorageVolumeSpec(pool, spec.name, 8 << 20, format="raw"),
        StorageVolumeSpec(pool, spec.name, 16 << 20),
    ):
        with pytest.raises(SpecConflict):
            hypervisor.create_storage_volume(other)
    with pytest.raises(NotFound):
        hypervisor.create_storage_volume(StorageVolumeSpec(res.name("nopool"), "v", 1 << 20))
    with pytest.raises(NotFound):
        hypervisor.storage_volume_info(pool, res.name("novol"))


def test_overlay_on_a_backing_volume(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    pool = res.pool()
    base = res.volume(StorageVolumeSpec(pool, res.name("base"), 4 << 20))
    other = res.volume(StorageVolumeSpec(pool, res.name("other"), 4 << 20))
    spec = StorageVolumeSpec(
        pool, res.name("overlay"), 8 << 20, backing_pool=pool, backing_volume=base
    )
    res.volumes.insert(0, (pool, spec.name))
    overlay = hypervisor.create_storage_volume(spec)
    assert (overlay.format, overlay.capacity_bytes) == ("qcow2", 8 << 20)
    assert hypervisor.create_storage_volume(spec).path == overlay.path
    for conflicting in (
        StorageVolumeSpec(pool, spec.name, 8 << 20),  # no backing
        StorageVolumeSpec(pool, spec.name, 8 << 20, backing_pool=pool, backing_volume=other),
    ):
        with pytest.raises(SpecConflict):
            hypervisor.create_storage_volume(conflicting)
    with pytest.raises(NotFound):
        hypervisor.create_storage_volume(
            StorageVolumeSpec(
                pool, res.name("x"), 1 << 20, backing_pool=pool, backing_volume="nope"
            )
        )
    with pytest.raises(DriverError):  # only qcow2 can have a backing file
        hypervisor.create_storage_volume(
            StorageVolumeSpec(
                pool, res.name("x"), 1 << 20, format="raw", backing_pool=pool, backing_volume=base
            )
        )
    if lane.real:  # what QEMU will see: a qcow2 whose backing file is the base, as qcow2
        info = subprocess.run(
            ["qemu-img", "info", "--output=json", "-U", overlay.path],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert f'"backing-filename": "{hypervisor.storage_volume_info(pool, base).path}"' in info
        assert '"backing-filename-format": "qcow2"' in info


def test_list_volumes_and_delete_see_files_made_behind_libvirts_back(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    pool = res.pool()
    made = res.volume(StorageVolumeSpec(pool, res.name("vol"), 1 << 20))
    assert [v.name for v in hypervisor.list_storage_volumes(pool)] == [made]
    with pytest.raises(NotFound):
        hypervisor.list_storage_volumes(res.name("nopool"))
    if not lane.real:
        return  # the fake's pools have no directory to write into
    # What QEMU does with a console log: a file in the pool's directory libvirt never made.
    directory = Path(hypervisor.pool_info(pool).path)
    listed, unlisted = directory / "listed-console.log", directory / "unlisted-console.log"
    listed.write_bytes(b"guest output")
    assert sorted(v.name for v in hypervisor.list_storage_volumes(pool)) == sorted(
        [made, "listed-console.log"]
    )
    unlisted.write_bytes(b"guest output")  # not listed since: delete still finds it
    hypervisor.delete_storage_volume(pool, "unlisted-console.log")
    hypervisor.delete_storage_volume(pool, "listed-console.log")
    assert not listed.exists()
    assert not unlisted.exists()


def test_copy_flattens_an_overlay_into_a_standalone_volume(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane, tmp_path: Path
) -> None:
    pool = res.pool()
    base = res.volume(StorageVolumeSpec(pool, res.name("base"), 4 << 20, format="raw"))
    overlay_spec = StorageVolumeSpec(
        pool, res.name("overlay"), 8 << 20, backing_pool=pool, backing_volume=base,
        backing_format="raw",
    )  # fmt: skip
    overlay = res.volume(overlay_spec)
    if lane.real:  # data in the base, and data written through the overlay on top of it
        data = os.urandom(4 << 20)
        hypervisor.upload_storage_volume(pool, base, io.BytesIO(data), len(data))
        overlay_path = hypervisor.storage_volume_info(pool, overlay).path
        subprocess.run(
            ["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", overlay_path],
            check=True,
            capture_output=True,
        )
    copy_spec = StorageVolumeSpec(pool, res.name("copy"), 8 << 20)
    res.volumes.insert(0, (pool, copy_spec.name))
    copy = hypervisor.copy_storage_volume(pool, overlay, copy_spec)
    assert (copy.format, copy.capacity_bytes) == ("qcow2", 8 << 20)
    with pytest.raises(SpecConflict):  # an existing copy may be incomplete: never reused
        hypervisor.copy_storage_volume(pool, overlay, copy_spec)
    with pytest.raises(DriverError):  # smaller than the source
        hypervisor.copy_storage_volume(
            pool, overlay, StorageVolumeSpec(pool, res.name("small"), 1 << 20)
        )
    with pytest.raises(DriverError):  # a copy has no backing
        hypervisor.copy_storage_volume(pool, overlay, overlay_spec)
    with pytest.raises(NotFound):
        hypervisor.copy_storage_volume(
            pool, res.name("novol"), StorageVolumeSpec(pool, res.name("x"), 1 << 20)
        )
    if lane.real:
        info = subprocess.run(
            ["qemu-img", "info", "--output=json", copy.path],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert "backing-filename" not in info
        hypervisor.delete_storage_volume(pool, overlay)
        hypervisor.delete_storage_volume(pool, base)  # the copy needs neither any more
        expected = bytearray(data + bytes(4 << 20))
        expected[1 << 20 : (1 << 20) + (64 << 10)] = b"\x5a" * (64 << 10)
        flat = tmp_path / "flat.raw"
        subprocess.run(
            ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", copy.path, str(flat)],
            check=True, capture_output=True,
        )  # fmt: skip
        assert hashlib.sha256(flat.read_bytes()).digest() == hashlib.sha256(expected).digest()


def test_resize_grows_and_never_shrinks(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    pool = res.pool()
    spec = StorageVolumeSpec(pool, res.name("vol"), 4 << 20)
    res.volume(spec)
    hypervisor.resize_storage_volume(pool, spec.name, 4 << 20)  # that size already: no-op
    with pytest.raises(DriverError) as shrink:
        hypervisor.resize_storage_volume(pool, spec.name, 2 << 20)
    assert not isinstance(shrink.value, Unsupported)
    if not lane.real:
        with pytest.raises(Unsupported):  # the fake cannot resize
            hypervisor.resize_storage_volume(pool, spec.name, 8 << 20)
        return
    hypervisor.resize_storage_volume(pool, spec.name, 8 << 20)
    assert hypervisor.storage_volume_info(pool, spec.name).capacity_bytes == 8 << 20
    # The step that created it, run again, still finds its volume (grown since): no-op.
    assert hypervisor.create_storage_volume(spec).capacity_bytes == 8 << 20


def test_upload_then_download_round_trips(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    pool = res.pool()
    data = os.urandom((1 << 20) + 12345)  # not a multiple of the stream's chunk size
    name = res.volume(StorageVolumeSpec(pool, res.name("raw"), len(data), format="raw"))
    if not lane.real:
        with pytest.raises(Unsupported):
            hypervisor.upload_storage_volume(pool, name, io.BytesIO(data), len(data))
        with pytest.raises(Unsupported):
            hypervisor.download_storage_volume(pool, name, lambda chunk: None)
        return
    hypervisor.upload_storage_volume(pool, name, io.BytesIO(data), len(data))
    received = bytearray()
    count = hypervisor.download_storage_volume(pool, name, received.extend)
    assert count == len(data) == len(received)
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest()
    with pytest.raises(DriverError):  # the source is shorter than announced
        hypervisor.upload_storage_volume(pool, name, io.BytesIO(data[:100]), len(data))
    with pytest.raises(NotFound):
        hypervisor.upload_storage_volume(pool, res.name("novol"), io.BytesIO(b"x"), 1)


def test_delete_volume_wipes_then_deletes(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    pool = res.pool()
    secret = b"tenant secret " * 4096
    wiped = res.volume(StorageVolumeSpec(pool, res.name("wiped"), len(secret), format="raw"))
    kept = res.volume(StorageVolumeSpec(pool, res.name("kept"), len(secret), format="raw"))
    links = {}
    if lane.real:
        for name in (wiped, kept):
            hypervisor.upload_storage_volume(pool, name, io.BytesIO(secret), len(secret))
            # A second name for the same inode: shows what happens to the blocks themselves.
            path = Path(hypervisor.storage_volume_info(pool, name).path)
            links[name] = path.with_name(f".{name}.link")
            os.link(path, links[name])
    hypervisor.delete_storage_volume(pool, wiped)
    hypervisor.delete_storage_volume(pool, kept, wipe=False)
    for name in (wiped, kept):
        with pytest.raises(NotFound):
            hypervisor.storage_volume_info(pool, name)
        hypervisor.delete_storage_volume(pool, name)  # missing: no-op
    hypervisor.delete_storage_volume(res.name("nopool"), "v")  # no pool, so no volume: no-op
    if lane.real:
        assert secret[:14] not in links[wiped].read_bytes()
        assert links[kept].read_bytes() == secret  # the control: without wipe, data stays


def test_delete_overwrites_a_sparse_qcow2_in_place(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    """A qcow2 file has holes (between its metadata and its clusters), and libvirt's own zero
    wipe truncates such a file instead of overwriting it: the blocks that held the tenant's
    data would be freed with the data on them. The erase overwrites them first."""
    pool = res.pool()
    name = res.volume(StorageVolumeSpec(pool, res.name("sparse"), 1 << 30, format="qcow2"))
    if not lane.real:
        hypervisor.delete_storage_volume(pool, name)  # the fake holds no data: deleted
        with pytest.raises(NotFound):
            hypervisor.storage_volume_info(pool, name)
        return
    path = Path(hypervisor.storage_volume_info(pool, name).path)
    erasure.write_marker(path, mib=4)
    link = path.with_name(f".{name}.link")
    os.link(path, link)
    held = erasure.marker_blocks(link)
    assert len(held) == 4 * 256
    assert os.stat(link).st_blocks * 512 < os.stat(link).st_size  # sparse, as measured
    hypervisor.delete_storage_volume(pool, name)
    with pytest.raises(NotFound):
        hypervisor.storage_volume_info(pool, name)
    assert not erasure.holds_marker(link)
    # The very blocks that held the marker still belong to the inode, overwritten in place.
    assert held <= erasure.physical_blocks(link)


# --- Networks ---------------------------------------------------------------------------------


def _dhcp_hosts(lane: Lane, name: str) -> set[tuple[str, str]]:
    conn = libvirt.open(lane.uri)
    try:
        root = ET.fromstring(conn.networkLookupByName(name).XMLDesc(0).encode())
    finally:
        conn.close()
    assert root.find("forward") is None  # isolated
    return {(h.get("mac"), h.get("ip")) for h in root.iterfind("ip/dhcp/host")}


def test_ensure_network_is_idempotent_and_adds_leases(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    lease_a = StaticLease("52:54:00:aa:00:01", "198.51.100.11", "a")
    lease_b = StaticLease("52:54:00:aa:00:02", "198.51.100.12")
    spec = NetworkSpec(
        res.name("net"),
        res.bridge(),
        "198.51.100.1/24",
        "198.51.100.128",
        "198.51.100.254",
        (lease_a,),
    )
    res.network(spec)
    hypervisor.ensure_network(spec)
    assert _dhcp_hosts(lane, spec.name) == {(lease_a.mac, lease_a.ip)}
    with_b = NetworkSpec(
        spec.name,
        spec.bridge,
        spec.gateway_cidr,
        spec.dhcp_start,
        spec.dhcp_end,
        (lease_a, lease_b),
    )
    hypervisor.ensure_network(with_b)
    hypervisor.ensure_network(with_b)
    assert _dhcp_hosts(lane, spec.name) == {(lease_a.mac, lease_a.ip), (lease_b.mac, lease_b.ip)}
    # The IPAM moved b's address to another MAC: the stale entry is replaced.
    moved = StaticLease("52:54:00:aa:00:03", lease_b.ip)
    hypervisor.ensure_network(
        NetworkSpec(spec.name, spec.bridge, spec.gateway_cidr, leases=(moved,))
    )
    assert _dhcp_hosts(lane, spec.name) == {(lease_a.mac, lease_a.ip), (moved.mac, moved.ip)}
    if lane.real:
        assert Path(f"/sys/class/net/{spec.bridge}").is_dir()
    for conflicting in (
        NetworkSpec(spec.name, res.bridge(), spec.gateway_cidr),
        NetworkSpec(spec.name, spec.bridge, "198.51.100.1/25"),
    ):
        with pytest.raises(SpecConflict):
            hypervisor.ensure_network(conflicting)
    with pytest.raises(DriverError):
        hypervisor.ensure_network(
            NetworkSpec(
                res.name("net"),
                res.bridge(),
                "198.51.100.1/24",
                leases=(StaticLease("52:54:00:aa:00:09", "192.0.2.9"),),
            )
        )
    hypervisor.delete_network(spec.name)
    hypervisor.delete_network(spec.name)  # missing: no-op
    if lane.real:
        assert not Path(f"/sys/class/net/{spec.bridge}").exists()


# --- Names cannot inject XML ------------------------------------------------------------------


def test_names_and_titles_cannot_alter_the_xml(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    plain = diskless(res, name=res.domain(), title="plain")
    evil = diskless(
        res,
        name=res.domain(res.name("dom") + NASTY_NAME),
        title=NASTY,
        tenant_id=NASTY,
        instance_id=NASTY,
    )
    for spec in (plain, evil):
        hypervisor.define_domain(spec)
    conn = libvirt.open(lane.uri)
    try:
        plain_xml = conn.lookupByName(plain.name).XMLDesc(0)
        evil_xml = conn.lookupByName(evil.name).XMLDesc(0)
    finally:
        conn.close()
    assert shape(evil_xml) == shape(plain_xml)
    assert ET.fromstring(evil_xml.encode()).findtext("name") == evil.name
    info = hypervisor.domain_info(evil.name)
    assert (info.name, info.tenant_id, info.instance_id) == (evil.name, NASTY, NASTY)
    assert evil.name in {d.name for d in hypervisor.list_domains()}
    hypervisor.define_domain(evil)  # its metadata read back intact: still the same spec

    pool = res.pool()
    volume = res.volume(StorageVolumeSpec(pool, res.name("vol") + NASTY_NAME, 1 << 20))
    vol_info = hypervisor.storage_volume_info(pool, volume)
    assert vol_info.name == volume
    assert os.path.basename(vol_info.path) == volume


# --- Timeouts and reconnection ------------------------------------------------------------------


def test_a_call_that_overruns_its_timeout_is_transient(
    lane: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    hv = LibvirtHypervisor(lane.uri, call_timeout=0.3)
    try:
        hv.facts()  # connected
        slow_getter = libvirt.virConnect.getHostname

        def slow(self: libvirt.virConnect) -> str:
            time.sleep(1.5)
            return slow_getter(self)

        # Mocked because a host that stops answering cannot be produced on demand here; only
        # the one libvirt method is slowed, the rest is the real connection.
        monkeypatch.setattr(libvirt.virConnect, "getHostname", slow)
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"within 0\.3 s"):
            hv.facts()
        assert time.monotonic() - started < 1.0
        monkeypatch.undo()
        assert hv.facts().cpus > 0  # the driver is not wedged by the abandoned call
    finally:
        hv.close()


def test_an_unreachable_host_is_transient_a_bad_uri_is_not() -> None:
    # Nothing listens on port 1 of this machine: connection refused.
    hv = LibvirtHypervisor("qemu+tcp://127.0.0.1:1/system", call_timeout=10)
    bad = LibvirtHypervisor("nosuchdriver:///system", call_timeout=10)
    try:
        with pytest.raises(TransientError, match="Connection refused"):
            hv.facts()
        with pytest.raises(DriverError) as refused:
            bad.facts()
        assert not isinstance(refused.value, TransientError)
    finally:
        hv.close()
        bad.close()


def test_reconnects_when_the_connection_is_closed_under_its_feet(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane
) -> None:
    pool = res.pool()
    hypervisor.facts()
    opened = hypervisor.connections_opened
    conn = hypervisor.libvirt_connection
    assert conn is not None
    conn.close()  # behind the driver's back
    assert hypervisor.list_domains() is not None
    assert hypervisor.connections_opened == opened + 1
    if lane.real:  # the daemon's state is untouched (the fake resets with its last connection)
        assert hypervisor.pool_info(pool).active
    with pytest.raises(NotFound):
        hypervisor.domain_info(res.name("missing"))  # errors still map after reconnecting


def test_a_closed_driver_refuses_calls(lane: Lane) -> None:
    hv = LibvirtHypervisor(lane.uri)
    hv.close()
    hv.close()  # twice: fine
    with pytest.raises(DriverError, match="closed"):
        hv.facts()


FORK_SCRIPT = """
import os, sys
from hypervisor.base import DriverError
from hypervisor.libvirt import LibvirtHypervisor

hv = LibvirtHypervisor(sys.argv[1])
hv.list_domains()  # the parent uses libvirt (and its event loop), then forks
pid = os.fork()
if pid == 0:
    child = LibvirtHypervisor(sys.argv[1])
    refused = 0
    for call in (child.list_domains, lambda: child.lifecycle_events(1)):
        try:
            call()
        except DriverError as exc:
            refused += "not fork-safe" in str(exc) or "forked" in str(exc)
    os._exit(0 if refused == 2 else 1)  # refused at once and clearly: never a hang
_, status = os.waitpid(pid, 0)
hv.list_domains()  # the parent's session is intact: no reconnection was needed
print(os.waitstatus_to_exitcode(status), hv.connections_opened)
"""


def test_a_child_forked_after_libvirt_was_used_is_refused_clearly(lane: Lane) -> None:
    # A subprocess: forking pytest itself (threads, libvirt state) is not something to do.
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, lane.uri],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.split() == ["0", "1"], result.stderr


@pytest.mark.parametrize(
    ("code", "message", "dead"),
    [
        (libvirt.VIR_ERR_SYSTEM_ERROR, "Cannot recv data: Connection reset by peer", True),
        (libvirt.VIR_ERR_SYSTEM_ERROR, "Cannot write data: Broken pipe", True),
        (libvirt.VIR_ERR_INTERNAL_ERROR, "client socket is closed", True),
        (libvirt.VIR_ERR_RPC, "anything", True),
        (libvirt.VIR_ERR_SYSTEM_ERROR, "Cannot create directory: Permission denied", False),
        (libvirt.VIR_ERR_NO_DOMAIN, "Domain not found", False),
    ],
)
def test_a_dead_connection_is_told_from_a_failed_call(code: int, message: str, dead: bool) -> None:
    # libvirtError takes its code and message from libvirt's last error: forge one.
    exc = libvirt.libvirtError(message)
    exc.err = (code, 0, message, 0, "", "", "", 0, 0)
    assert is_dead_connection(exc) is dead
