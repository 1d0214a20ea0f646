"""The storage and disk parts of the `Hypervisor` contract on an rbd pool (the Ceph backend),
on both lanes of test_hypervisor_contract.py: libvirt's fake, which keeps rbd pools and
volumes as definitions (no cluster, no secrets, no data, no devices), and the real libvirtd
with QEMU on the session's Ceph lab (tests/support/ceph_lab.py), where volumes are RBD images
and guests' disks are network disks. What the directory backend proves in
test_hypervisor_contract.py and test_hypervisor_disks.py, this proves for rbd: idempotent
pools and volumes, growing, copies (here from a directory pool: a volume from an image),
erasure (none of an image's RADOS objects left), attach, detach and live resize."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import libvirt
import pytest

from hypervisor.base import (
    DiskSpec,
    DriverError,
    NotFound,
    PoolSpec,
    PowerState,
    RbdSource,
    SpecConflict,
    StorageVolumeSpec,
    TransientError,
    Unsupported,
)
from hypervisor.libvirt import LibvirtHypervisor, domain_xml
from hypervisor.libvirt.rbd import RbdCopy, target_opts
from hypervisor.libvirt.storage import rbd_source
from tests.hypervisor.test_hypervisor_disks import _disks, _guest
from tests.support.ceph_lab import CLIENT, POOL, CephLab, stop_directory
from tests.support.hypervisor_lanes import Lane, Resources

MIB = 1 << 20


@pytest.fixture
def ceph(lane: Lane, request: pytest.FixtureRequest) -> CephLab | None:
    """The session's Ceph lab on the real lane (the rbd_pool fixture's cluster), else None."""
    return request.getfixturevalue("ceph_lab") if lane.real else None


def _source(lane: Lane, pool: str) -> RbdSource:
    conn = libvirt.open(lane.uri)
    try:
        found = rbd_source(conn.storagePoolLookupByName(pool).XMLDesc(0))
    finally:
        conn.close()
    assert found is not None
    return found


def test_an_rbd_pool_is_idempotent_and_follows_its_cluster(
    hypervisor: LibvirtHypervisor,
    res: Resources,
    lane: Lane,
    rbd_pool: str,
    ceph: CephLab | None,
) -> None:
    source = _source(lane, rbd_pool)
    assert (source.pool, source.user) == (POOL, CLIENT)
    if ceph is not None:  # its own ports: never Ceph's defaults, which another cluster uses
        assert ceph.monitors == source.monitors
        assert not {ceph.mon_port, ceph.mon_v2_port} & {3300, 6789}
    spec = PoolSpec.on_rbd(rbd_pool, source)
    hypervisor.ensure_pool(spec)  # the same: no-op
    info = hypervisor.pool_info(rbd_pool)
    assert info.active
    assert info.capacity_bytes >= info.available_bytes > 0
    # Another source (the operator moved a monitor, gave another user): defined again.
    moved = dataclasses.replace(source, monitors=(*source.monitors, ("127.0.0.2", 6789)))
    if not lane.real:  # nothing to reach on the fake: the definition is what changes
        hypervisor.ensure_pool(PoolSpec.on_rbd(rbd_pool, moved))
        assert _source(lane, rbd_pool) == moved
    hypervisor.ensure_pool(spec)
    assert _source(lane, rbd_pool) == source
    with pytest.raises(SpecConflict):  # a directory pool of that name is something else
        hypervisor.ensure_pool(PoolSpec(rbd_pool, str(lane.root / rbd_pool)))
    for bad in (
        PoolSpec(res.name("rbd"), "", backend="rbd"),  # no source
        PoolSpec.on_rbd(res.name("rbd"), dataclasses.replace(source, secret_uuid="nope")),
        PoolSpec.on_rbd(res.name("rbd"), dataclasses.replace(source, monitors=())),
        PoolSpec(res.name("lvm"), "/dev/vg", backend="lvm"),
    ):
        with pytest.raises(DriverError):
            hypervisor.ensure_pool(bad)


def test_rbd_volumes_are_raw_images_created_idempotently(
    hypervisor: LibvirtHypervisor,
    res: Resources,
    lane: Lane,
    rbd_pool: str,
    ceph: CephLab | None,
) -> None:
    spec = StorageVolumeSpec(rbd_pool, res.name("vol"), 8 * MIB, format="raw")
    made = hypervisor.storage_volume_info(rbd_pool, res.volume(spec))
    assert (made.name, made.capacity_bytes, made.format) == (spec.name, 8 * MIB, "raw")
    assert hypervisor.create_storage_volume(spec) == made  # again: no-op
    with pytest.raises(SpecConflict):  # bigger than it is
        hypervisor.create_storage_volume(dataclasses.replace(spec, capacity_bytes=16 * MIB))
    for refused in (
        dataclasses.replace(spec, name=res.name("q"), format="qcow2"),
        dataclasses.replace(spec, name=res.name("e"), encryption_secret=str(uuid.uuid4())),
    ):
        with pytest.raises(DriverError):
            hypervisor.create_storage_volume(refused)
    assert [v.name for v in hypervisor.list_storage_volumes(rbd_pool)] == [spec.name]
    if not lane.real:
        return
    assert ceph is not None
    assert made.path == f"{POOL}/{spec.name}"
    assert spec.name in ceph.images()
    # Grows, never shrinks; the step that created it still finds it.
    hypervisor.resize_storage_volume(rbd_pool, spec.name, 8 * MIB)
    with pytest.raises(DriverError):
        hypervisor.resize_storage_volume(rbd_pool, spec.name, 4 * MIB)
    hypervisor.resize_storage_volume(rbd_pool, spec.name, 12 * MIB)
    info = json.loads(ceph.rbd("info", "--format", "json", made.path))
    assert info["size"] == 12 * MIB
    assert hypervisor.create_storage_volume(spec).capacity_bytes == 12 * MIB
    # libvirt streams no data to or from RBD: the driver says so (copies are qemu-img's).
    with pytest.raises(Unsupported):
        hypervisor.upload_storage_volume(rbd_pool, spec.name, io.BytesIO(b"x"), 1)
    with pytest.raises(Unsupported):
        hypervisor.download_storage_volume(rbd_pool, spec.name, lambda chunk: None)


def test_a_copy_into_rbd_is_the_flattened_source_and_a_delete_leaves_no_object(
    hypervisor: LibvirtHypervisor,
    res: Resources,
    lane: Lane,
    rbd_pool: str,
    ceph: CephLab | None,
) -> None:
    """A volume from an image: the cached image (a qcow2 in a directory pool, here an
    overlay with data in its base and on top) written into a new RBD image. Then the erasure
    of issue 11: after the delete, `rados ls` finds none of the image's objects."""
    dir_pool = res.pool()
    base = res.volume(StorageVolumeSpec(dir_pool, res.name("base"), 4 * MIB))
    overlay = res.volume(
        StorageVolumeSpec(dir_pool, res.name("ovl"), 6 * MIB, backing_pool=dir_pool,
                          backing_volume=base)
    )  # fmt: skip
    if lane.real:
        for name, pattern, offset in ((base, "0x11", "0"), (overlay, "0x5a", "1M")):
            path = hypervisor.storage_volume_info(dir_pool, name).path
            subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} 64k",
                            path], check=True, capture_output=True)  # fmt: skip
    spec = StorageVolumeSpec(rbd_pool, res.name("copy"), 8 * MIB, format="raw")
    key = ceph.client_key_bytes() if ceph is not None else b"no key on the fake"
    with pytest.raises(DriverError, match="key"):
        hypervisor.copy_storage_volume(dir_pool, overlay, spec)
    res.volumes.insert(0, (rbd_pool, spec.name))
    copy = hypervisor.copy_storage_volume(dir_pool, overlay, spec, ceph_key=key)
    assert (copy.format, copy.capacity_bytes) == ("raw", 8 * MIB)
    with pytest.raises(SpecConflict):  # an existing copy may be incomplete: never reused
        hypervisor.copy_storage_volume(dir_pool, overlay, spec, ceph_key=key)
    small = StorageVolumeSpec(rbd_pool, res.name("small"), 1 * MIB, format="raw")
    with pytest.raises(DriverError):
        hypervisor.copy_storage_volume(dir_pool, overlay, small, ceph_key=key)
    with pytest.raises(NotFound):
        hypervisor.copy_storage_volume(dir_pool, res.name("novol"), small, ceph_key=key)
    if not lane.real:
        hypervisor.delete_storage_volume(rbd_pool, spec.name)
        with pytest.raises(NotFound):
            hypervisor.storage_volume_info(rbd_pool, spec.name)
        return

    assert ceph is not None
    for pattern, offset in (("0x11", "0"), ("0x5a", "1M"), ("0", "6M")):  # base, top, beyond
        check = ceph.run("qemu-io", "-f", "raw", "-r", "-c",
                         f"read -P {pattern} {offset} 64k", f"rbd:{copy.path}")  # fmt: skip
        assert "Pattern verification failed" not in check
    # Out of an rbd pool, into either kind: refused (RBD snapshots and clones, later).
    with pytest.raises(DriverError, match="out of an rbd pool"):
        hypervisor.copy_storage_volume(
            rbd_pool, spec.name, dataclasses.replace(spec, name=res.name("again")), ceph_key=key
        )
    with pytest.raises(DriverError, match="out of an rbd pool"):
        hypervisor.copy_storage_volume(
            rbd_pool, spec.name, StorageVolumeSpec(dir_pool, res.name("back"), 8 * MIB)
        )
    # A failed copy (a wrong key) leaves no image behind.
    wrong = StorageVolumeSpec(rbd_pool, res.name("wrong"), 8 * MIB, format="raw")
    with pytest.raises(DriverError, match="qemu-img"):
        hypervisor.copy_storage_volume(dir_pool, overlay, wrong, ceph_key=bytes(16))
    assert wrong.name not in ceph.images()

    # Erasure: every object of the image's data is gone after the delete; a control image
    # shows that `rados ls` does list such objects.
    prefix = ceph.image_prefix(spec.name)
    assert any(obj.startswith(prefix) for obj in ceph.rados_objects())
    hypervisor.delete_storage_volume(rbd_pool, spec.name)
    assert not [obj for obj in ceph.rados_objects() if spec.name in obj or prefix in obj]
    with pytest.raises(NotFound):
        hypervisor.storage_volume_info(rbd_pool, spec.name)
    hypervisor.delete_storage_volume(rbd_pool, spec.name)  # missing: no-op


def test_an_rbd_image_with_snapshots_is_not_deleted(
    hypervisor: LibvirtHypervisor,
    res: Resources,
    lane: Lane,
    rbd_pool: str,
    ceph: CephLab | None,
) -> None:
    name = res.volume(StorageVolumeSpec(rbd_pool, res.name("vol"), 4 * MIB, format="raw"))
    if not lane.real:
        return  # the fake has no RBD snapshots
    assert ceph is not None
    ceph.rbd("snap", "create", f"{POOL}/{name}@keep")
    with pytest.raises(DriverError):
        hypervisor.delete_storage_volume(rbd_pool, name)
    assert name in ceph.images()  # nothing lost
    ceph.rbd("snap", "purge", f"{POOL}/{name}")
    hypervisor.delete_storage_volume(rbd_pool, name)
    assert name not in ceph.images()


def test_a_ceph_secret_is_of_kind_ceph(hypervisor: LibvirtHypervisor, lane: Lane) -> None:
    secret = str(uuid.uuid4())
    if not lane.real:
        with pytest.raises(Unsupported):
            hypervisor.define_secret(secret, b"key", ceph=True)
        return
    try:
        hypervisor.define_secret(secret, b"key", ceph=True)
        hypervisor.define_secret(secret, b"key again", ceph=True)
        conn = libvirt.open(lane.uri)
        try:
            xml = conn.secretLookupByUUIDString(secret).XMLDesc(0)
        finally:
            conn.close()
        assert "<usage type='ceph'>" in xml
        assert "private='yes'" in xml
        with pytest.raises(SpecConflict):  # the same UUID as a volume's passphrase
            hypervisor.define_secret(secret, b"passphrase")
    finally:
        hypervisor.undefine_secret(secret)


def test_an_rbd_disk_is_a_network_disk_naming_the_cluster() -> None:
    rbd = RbdSource((("10.0.0.1", 6789), ("10.0.0.2", 6790)), "volumes", "cinder",
                    str(uuid.uuid4()))  # fmt: skip
    disk = DiskSpec(pool="ceph-1", volume="volume-1", target="vdb", format="raw")
    element = domain_xml._parse(domain_xml.disk_xml(disk, rbd))
    assert element.get("type") == "network"
    source = element.find("source")
    assert source is not None
    assert (source.get("protocol"), source.get("name")) == ("rbd", "volumes/volume-1")
    assert [(h.get("name"), h.get("port")) for h in source.iterfind("host")] == [
        ("10.0.0.1", "6789"),
        ("10.0.0.2", "6790"),
    ]
    auth = element.find("auth")
    assert auth is not None
    assert auth.get("username") == "cinder"
    assert auth.find("secret").get("uuid") == rbd.secret_uuid
    assert domain_xml.disk_source(element) == ("volumes", "volume-1", None)
    for refused in (
        dataclasses.replace(disk, format="qcow2"),
        dataclasses.replace(disk, encryption_secret=str(uuid.uuid4())),
    ):
        with pytest.raises(DriverError):
            domain_xml.disk_xml(refused, rbd)
    with pytest.raises(DriverError):
        domain_xml.disk_xml(disk, dataclasses.replace(rbd, secret_uuid="x"))


def test_rbd_disks_attach_detach_and_grow_live(
    hypervisor: LibvirtHypervisor,
    res: Resources,
    lane: Lane,
    rbd_pool: str,
    ceph: CephLab | None,
) -> None:
    """test_hypervisor_disks.py's contract with volumes of an rbd pool: a domain defined with
    one (its boot disk), another attached while it is off, a third hot-plugged while it runs,
    grown live through QEMU, and the honest detach of a guest that never lets go."""
    first, second, third = (
        res.volume(StorageVolumeSpec(rbd_pool, res.name("vol"), 8 * MIB, format="raw"))
        for _ in range(3)
    )
    vdb = DiskSpec(pool=rbd_pool, volume=first, target="vdb", format="raw")
    spec = _guest(res, lane, (vdb,))
    hypervisor.define_domain(spec)
    hypervisor.define_domain(spec)  # the same spec and cluster: no-op
    hypervisor.attach_disk(spec.name, vdb)  # already there: no-op
    with pytest.raises(SpecConflict):
        hypervisor.attach_disk(spec.name, dataclasses.replace(vdb, volume=second))
    assert _disks(lane, spec.name, live=False) == {"vdb": first}
    vdc = DiskSpec(pool=rbd_pool, volume=second, target="vdc", format="raw")
    if not lane.real:
        with pytest.raises(Unsupported):
            hypervisor.attach_disk(spec.name, vdc)
        return

    hypervisor.attach_disk(spec.name, vdc)
    hypervisor.attach_disk(spec.name, vdc)
    assert _disks(lane, spec.name, live=False) == {"vdb": first, "vdc": second}
    hypervisor.start_domain(spec.name)  # QEMU opens both images with the pool's secret
    vdd = DiskSpec(pool=rbd_pool, volume=third, target="vdd", format="raw")
    hypervisor.attach_disk(spec.name, vdd)
    hypervisor.attach_disk(spec.name, vdd)
    both = {"vdb": first, "vdc": second, "vdd": third}
    assert _disks(lane, spec.name, live=True) == both
    assert _disks(lane, spec.name, live=False) == both
    assert ceph is not None
    watchers = json.loads(ceph.rbd("status", "--format", "json", f"{POOL}/{third}"))
    assert watchers["watchers"], "QEMU holds the hot-plugged image open"

    assert hypervisor.resize_attached_disk(spec.name, "vdd", 24 * MIB) is True
    assert hypervisor.storage_volume_info(rbd_pool, third).capacity_bytes == 24 * MIB
    with pytest.raises(DriverError, match="cannot shrink"):
        hypervisor.resize_attached_disk(spec.name, "vdd", 8 * MIB)

    with pytest.raises(TransientError, match="has not released it"):
        hypervisor.detach_disk(spec.name, "vdd", timeout_seconds=1)
    assert "vdd" not in _disks(lane, spec.name, live=False)
    hypervisor.destroy_domain(spec.name)
    hypervisor.detach_disk(spec.name, "vdd")
    hypervisor.detach_disk(spec.name, "vdc")
    assert _disks(lane, spec.name, live=False) == {"vdb": first}
    hypervisor.undefine_domain(spec.name)


@pytest.mark.hypervisor
def test_an_attach_while_the_osd_is_dead_ends_within_its_bound(
    real_res: Resources, real_lane: Lane
) -> None:
    """Issue 11's fault: the OSD killed (SIGKILL) before an attach. QEMU's open of the image
    then waits on the OSD for as long as it takes; the driver's call ends at its bound with
    TransientError (the attach fails cleanly: the caller's operation ends), the domain keeps
    answering, neither of its definitions holds the disk (no half-attached state), and it
    can still be destroyed. A lab of its own: memstore loses the cluster with its OSD."""
    lab = CephLab()
    hv = real_res.hv
    bounded = LibvirtHypervisor(real_lane.uri, call_timeout=6)
    try:
        lab.start()
        secret = str(uuid.uuid4())
        real_res.secrets.append(secret)
        hv.define_secret(secret, lab.client_key_bytes(), ceph=True)
        pool = real_res.name("rbd")
        real_res.pools.append(pool)
        hv.ensure_pool(PoolSpec.on_rbd(pool, RbdSource(lab.monitors, POOL, CLIENT, secret)))
        volume = real_res.name("vol")
        hv.create_storage_volume(StorageVolumeSpec(pool, volume, 8 * MIB, format="raw"))
        spec = _guest(real_res, real_lane, ())
        hv.define_domain(spec)
        hv.start_domain(spec.name)

        lab.kill_osd()
        started = time.monotonic()
        with pytest.raises(TransientError, match="no answer"):
            bounded.attach_disk(spec.name, DiskSpec(pool=pool, volume=volume, target="vdb",
                                               format="raw"))  # fmt: skip
        assert time.monotonic() - started < 6 + 2
        assert hv.domain_info(spec.name).power_state == PowerState.RUNNING
        assert "vdb" not in _disks(real_lane, spec.name, live=False)
        assert "vdb" not in _disks(real_lane, spec.name, live=True)
        # QEMU, stuck in librados, ignores SIGTERM: libvirt kills it after its 10 s grace
        # and the abandoned attach's job (17 s measured).
        hv.destroy_domain(spec.name)
        assert hv.domain_info(spec.name).power_state == PowerState.SHUTOFF
    finally:
        bounded.close()
        lab.stop()


def _qemu_options(text: str) -> dict[str, str]:
    """QEMU's reading of ``key=value,key=value`` (a doubled comma is a comma)."""
    options, current = [], ""
    index = 0
    while index < len(text):
        if text.startswith(",,", index):
            current, index = current + ",", index + 2
        elif text[index] == ",":
            options.append(current)
            current, index = "", index + 1
        else:
            current, index = current + text[index], index + 1
    options.append(current)
    return dict(option.split("=", 1) for option in options)


def test_names_cannot_add_options_to_qemu_img() -> None:
    """A name with commas (a volume name is the control plane's, but a pool or user name is
    an operator's text) stays one value of qemu-img's target options."""
    copy = RbdCopy(
        source_path="/var/lib/x.qcow2",
        source_format="qcow2",
        rbd=RbdSource(
            (("mon,file.filename=/etc/shadow", 6789),),
            "volumes,driver=file",
            "user,key-secret=other",
            str(uuid.uuid4()),
        ),
        image="image,file.filename=/etc/passwd",
    )
    options = _qemu_options(target_opts(copy, "/run/private,file.x=y/ceph.conf"))
    assert set(options) == {
        "driver", "file.driver", "file.pool", "file.image", "file.user", "file.key-secret",
        "file.conf", "file.server.0.host", "file.server.0.port",
    }  # fmt: skip
    assert options["file.image"] == copy.image
    assert options["file.pool"] == copy.rbd.pool
    assert options["file.key-secret"] == "andromede-key"
    assert options["file.conf"] == "/run/private,file.x=y/ceph.conf"


def test_the_lab_removes_only_its_own_directory_and_daemons(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a Ceph lab"):
        stop_directory(tmp_path)
    assert tmp_path.exists()
    directory = tmp_path / "andr-ceph-test"
    (directory / "run").mkdir(parents=True)
    (directory / "run" / "osd.pid").write_text(str(os.getpid()))  # not a ceph-osd: spared
    stop_directory(directory)  # no daemon of its own: only the directory goes
    assert not directory.exists()
