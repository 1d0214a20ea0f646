"""Storage pools and volumes. Functions here take a live ``virConnect`` and may raise
``libvirtError`` (the hypervisor maps it); the XML they send is built with lxml.

Erasing: a volume is overwritten in place with zeros before it is deleted. libvirt's own
zero wipe (``virStorageVolWipe``) overwrites a directory volume's file only when the file has
no holes; a sparse file it truncates to nothing and back, which frees its blocks with the data
still on them (measured on libvirt 9.0, ext4: a qcow2 file written with a 64 MiB marker has
holes between its metadata and its clusters, and after the wipe it owned no block at all).
So a file with holes (`file_extent`) is first filled: every byte of it, holes included,
rewritten with zeros through a volume upload, after which libvirt's wipe takes its
overwriting path and syncs the file (fdatasync) before the delete frees the space. The
blocks that held the data are the ones overwritten (ext4 rewrites allocated blocks in place;
a copy-on-write filesystem would not, and is not supported under a volumes pool). For a
qcow2 overlay the tenant's data is the overlay's file; the base image it points to is shared
and not the tenant's. libvirt's test driver cannot wipe and holds no data; there the wipe
is skipped.

rbd pools (Ceph): the pool's definition names the cluster (monitors, RADOS pool, cephx user
and the libvirt secret holding its key); a volume is a raw RBD image. Erasing one is removing
it: ``rbd_remove`` deletes every RADOS object of the image (what a discard would do first,
object by object; a zero wipe would instead write, and allocate, every byte of a thin image),
and refuses while the image has snapshots (nothing is lost then). What the OSDs do with
the freed space is Ceph's (docs/operations.md: encrypted OSDs).
"""

from __future__ import annotations

import os
import time

import libvirt
from lxml import etree as ET

from hypervisor.base import (
    DriverError,
    PoolInfo,
    PoolSpec,
    RbdSource,
    SpecConflict,
    StorageVolumeInfo,
    StorageVolumeSpec,
)
from hypervisor.libvirt.connection import is_dead_connection
from hypervisor.libvirt.domain_xml import check_name
from hypervisor.libvirt.rbd import RbdCopy
from hypervisor.libvirt.secrets import check_uuid

_FORMATS = ("qcow2", "raw")


def _xml(root: ET._Element) -> str:
    return ET.tostring(root, encoding="unicode")


def _parse(xml: str) -> ET._Element:
    parser = ET.XMLParser(resolve_entities=False, no_network=True)
    return ET.fromstring(xml.encode(), parser)


def _int(root: ET._Element, path: str) -> int:
    text = root.findtext(path)
    return int(text) if text else 0


def _format(root: ET._Element, path: str) -> str | None:
    element = root.find(path)
    return None if element is None else element.get("type")


def is_test_driver(conn: libvirt.virConnect) -> bool:
    """libvirt's in-process fake (test:///…): it keeps no data in its volumes."""
    return str(conn.getType()).upper() == "TEST"


# --- Pools ------------------------------------------------------------------------------------


def pool_xml(spec: PoolSpec) -> str:
    check_name("pool", spec.name)
    root = ET.Element("pool", type=spec.backend)
    ET.SubElement(root, "name").text = spec.name
    if spec.rbd is not None:
        source = ET.SubElement(root, "source")
        ET.SubElement(source, "name").text = spec.rbd.pool
        for host, port in spec.rbd.monitors:
            ET.SubElement(source, "host", name=host, port=str(int(port)))
        auth = ET.SubElement(source, "auth", username=spec.rbd.user, type="ceph")
        ET.SubElement(auth, "secret", uuid=spec.rbd.secret_uuid)
        return _xml(root)
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "path").text = spec.path
    return _xml(root)


def rbd_source(xml: str) -> RbdSource | None:
    """The cluster an rbd pool's definition names; None for another kind of pool."""
    root = _parse(xml)
    if root.get("type") != "rbd":
        return None
    auth = root.find("source/auth")
    secret = root.find("source/auth/secret")
    return RbdSource(
        monitors=tuple(
            (host.get("name") or "", int(host.get("port") or 6789))
            for host in root.iterfind("source/host")
        ),
        pool=root.findtext("source/name") or "",
        user="" if auth is None else auth.get("username", ""),
        secret_uuid="" if secret is None else secret.get("uuid", ""),
    )


def rbd_sources(conn: libvirt.virConnect, pools: set[str]) -> dict[str, RbdSource]:
    """The source of each of these pools that is an rbd pool (how its volumes are attached:
    domain_xml). A pool that does not exist is left out: attaching its volume fails later,
    with libvirt's own error."""
    found = {}
    for name in sorted(pools):
        try:
            xml = lookup_pool(conn, name).XMLDesc(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                continue
            raise
        source = rbd_source(xml)
        if source is not None:
            found[name] = source
    return found


def _check_pool_spec(spec: PoolSpec) -> None:
    if spec.backend == "dir":
        if spec.rbd is not None or not os.path.isabs(spec.path):
            raise DriverError(f"pool {spec.name!r}: a directory pool has an absolute path")
        return
    if spec.backend != "rbd" or spec.rbd is None:
        raise DriverError(f"pool {spec.name!r}: only directory and rbd pools are supported")
    check_uuid(spec.rbd.secret_uuid)
    check_name("pool", spec.rbd.pool)
    if not spec.rbd.monitors or not spec.rbd.user:
        raise DriverError(f"pool {spec.name!r}: an rbd pool has monitors and a user")


def lookup_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    check_name("pool", name)
    return conn.storagePoolLookupByName(name)


def _check_same_pool(pool: libvirt.virStoragePool, spec: PoolSpec) -> None:
    xml = pool.XMLDesc(0)
    have = _parse(xml)
    if spec.backend == "rbd" and have.get("type") == "rbd":
        if rbd_source(xml) != spec.rbd:
            # Nothing lives in the libvirt pool itself: define it again with the new
            # source (the operator moved monitors, or gave another user or key).
            if pool.isActive():
                pool.destroy()
            pool.undefine()
            raise _Redefine
        return
    path = have.findtext("target/path") or ""
    if have.get("type") != spec.backend or os.path.normpath(path) != os.path.normpath(spec.path):
        raise SpecConflict(
            f"pool {spec.name!r} exists as a {have.get('type')} pool at {path!r}, "
            f"not a {spec.backend} pool at {spec.path!r}"
        )


class _Redefine(Exception):
    """An rbd pool was undefined to be defined again with a new source."""


def ensure_pool(conn: libvirt.virConnect, spec: PoolSpec) -> None:
    _check_pool_spec(spec)
    try:
        _ensure_pool(conn, spec)
    except _Redefine:
        _ensure_pool(conn, spec)


def _ensure_pool(conn: libvirt.virConnect, spec: PoolSpec) -> None:
    xml = pool_xml(spec)
    try:
        pool = conn.storagePoolLookupByName(spec.name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise
        try:
            pool = conn.storagePoolDefineXML(xml, 0)
        except libvirt.libvirtError as failed:
            if is_dead_connection(failed):
                raise  # not "no such pool": the driver reconnects and runs the call again
            # Defined meanwhile by someone else? Then compare with it; else the error stands.
            try:
                pool = conn.storagePoolLookupByName(spec.name)
            except libvirt.libvirtError:
                raise exc from None
    _check_same_pool(pool, spec)
    if not pool.isActive():
        if spec.backend == "dir":
            pool.build(0)  # a directory pool: mkdir -p, never destroys anything
        try:
            pool.create(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or not pool.isActive():
                raise  # (OPERATION_INVALID and active: started meanwhile)
    if not pool.autostart():
        pool.setAutostart(1)


def pool_info(conn: libvirt.virConnect, name: str) -> PoolInfo:
    pool = lookup_pool(conn, name)
    active = bool(pool.isActive())
    if active:
        try:
            pool.refresh(0)
        except libvirt.libvirtError as exc:
            # "has asynchronous jobs running" (an upload in progress): use the last figures.
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise
    _state, capacity, _allocation, available = pool.info()
    path = _parse(pool.XMLDesc(0)).findtext("target/path") or ""
    return PoolInfo(
        name=name,
        path=path,
        capacity_bytes=int(capacity),
        available_bytes=int(available),
        active=active,
    )


# --- Volumes ----------------------------------------------------------------------------------


def lookup_volume(conn: libvirt.virConnect, pool: str, name: str) -> libvirt.virStorageVol:
    check_name("volume", name)
    return lookup_pool(conn, pool).storageVolLookupByName(name)


def storage_volume_info(pool: str, vol: libvirt.virStorageVol) -> StorageVolumeInfo:
    root = _parse(vol.XMLDesc(0))
    return StorageVolumeInfo(
        pool=pool,
        name=root.findtext("name") or vol.name(),
        path=root.findtext("target/path") or vol.path(),
        capacity_bytes=_int(root, "capacity"),
        allocation_bytes=_int(root, "allocation"),
        format=_format(root, "target/format") or "",
    )


def volume_xml(spec: StorageVolumeSpec, backing_path: str | None) -> str:
    check_name("volume", spec.name)
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = spec.name
    ET.SubElement(root, "capacity", unit="bytes").text = str(spec.capacity_bytes)
    ET.SubElement(root, "allocation", unit="bytes").text = "0"  # sparse
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", type=spec.format)
    if spec.encryption_secret is not None:
        # QEMU's own LUKS inside the qcow2 (libvirt runs qemu-img with the secret's value,
        # so the secret must be defined now); never dm-crypt.
        encryption = ET.SubElement(target, "encryption", format="luks")
        ET.SubElement(encryption, "secret", type="passphrase", uuid=spec.encryption_secret)
    if backing_path is not None:
        backing = ET.SubElement(root, "backingStore")
        ET.SubElement(backing, "path").text = backing_path
        ET.SubElement(backing, "format", type=spec.backing_format)
    return _xml(root)


def _check_volume_spec(spec: StorageVolumeSpec) -> None:
    if spec.format not in _FORMATS or spec.backing_format not in _FORMATS:
        raise DriverError(f"volume {spec.name!r}: format is one of {_FORMATS}")
    if spec.capacity_bytes < 0:
        raise DriverError(f"volume {spec.name!r}: negative capacity")
    if (spec.backing_pool is None) != (spec.backing_volume is None):
        raise DriverError(f"volume {spec.name!r}: give both backing_pool and backing_volume")
    if spec.backing_volume is not None and spec.format != "qcow2":
        raise DriverError(f"volume {spec.name!r}: only a qcow2 volume can have a backing volume")
    if spec.encryption_secret is not None:
        if spec.format != "qcow2" or spec.backing_volume is not None:
            raise DriverError(f"volume {spec.name!r}: an encrypted volume is a standalone qcow2")
        check_uuid(spec.encryption_secret)


def _backing_path(conn: libvirt.virConnect, spec: StorageVolumeSpec) -> str | None:
    if spec.backing_pool is None or spec.backing_volume is None:
        return None
    return str(lookup_volume(conn, spec.backing_pool, spec.backing_volume).path())


def _check_same_volume(
    vol: libvirt.virStorageVol, spec: StorageVolumeSpec, backing: str | None
) -> None:
    root = _parse(vol.XMLDesc(0))
    fmt = _format(root, "target/format")
    have_backing = root.findtext("backingStore/path")
    have_backing_fmt = _format(root, "backingStore/format")
    problems = []
    # A raw volume's format is probed from its content: a raw one holding an ISO 9660 image
    # (a NoCloud seed) reads back as "iso" once uploaded; it is still the same raw volume.
    if fmt != spec.format and not (spec.format == "raw" and fmt == "iso"):
        problems.append(f"format {fmt}")
    if _int(root, "capacity") < spec.capacity_bytes:
        problems.append(f"capacity {_int(root, 'capacity')}")
    if (have_backing and os.path.normpath(have_backing)) != (backing and os.path.normpath(backing)):
        problems.append(f"backing {have_backing}")
    elif backing is not None and have_backing_fmt not in (None, spec.backing_format):
        problems.append(f"backing format {have_backing_fmt}")
    encrypted = root.find("target/encryption") is not None
    if encrypted != (spec.encryption_secret is not None):
        problems.append("encryption" if encrypted else "no encryption")
    if problems:
        raise SpecConflict(f"volume {spec.name!r} exists with {', '.join(problems)}")


def is_rbd_pool(pool: libvirt.virStoragePool) -> bool:
    return _parse(pool.XMLDesc(0)).get("type") == "rbd"


def _check_rbd_volume(spec: StorageVolumeSpec) -> None:
    if spec.format != "raw" or spec.backing_volume is not None or spec.encryption_secret:
        raise DriverError(
            f"volume {spec.name!r}: a volume of rbd pool {spec.pool!r} is a raw RBD image, "
            "without backing or encryption"
        )


#: qemu-img times the key derivation of a new LUKS header in CPU time; on a loaded host that
#: measure can come out empty and it gives up with this message (libvirt then removes what it
#: began): the same create, asked again, goes through.
_LUKS_TIMING_FLAKE = "Unable to get accurate CPU usage"
_LUKS_ATTEMPTS = 3


def _create_xml(pool: libvirt.virStoragePool, xml: str) -> libvirt.virStorageVol:
    for attempt in range(1, _LUKS_ATTEMPTS + 1):
        try:
            return pool.createXML(xml, 0)
        except libvirt.libvirtError as exc:
            if attempt == _LUKS_ATTEMPTS or _LUKS_TIMING_FLAKE not in str(exc):
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def create_storage_volume(conn: libvirt.virConnect, spec: StorageVolumeSpec) -> StorageVolumeInfo:
    _check_volume_spec(spec)
    pool = lookup_pool(conn, spec.pool)
    if is_rbd_pool(pool):
        _check_rbd_volume(spec)
    backing = _backing_path(conn, spec)
    check_name("volume", spec.name)
    try:
        vol = pool.storageVolLookupByName(spec.name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
        try:
            vol = _create_xml(pool, volume_xml(spec, backing))
        except libvirt.libvirtError as failed:
            if is_dead_connection(failed):
                raise  # not "no such volume": the driver reconnects and runs the call again
            try:  # created meanwhile (a concurrent run of the same step)?
                vol = pool.storageVolLookupByName(spec.name)
            except libvirt.libvirtError:
                raise failed from None  # why the create failed, not "no such volume"
        else:
            return storage_volume_info(spec.pool, vol)
    _check_same_volume(vol, spec, backing)
    return storage_volume_info(spec.pool, vol)


def copy_storage_volume(
    conn: libvirt.virConnect, source_pool: str, source_name: str, spec: StorageVolumeSpec
) -> StorageVolumeInfo:
    """`spec` created as a standalone copy of the source volume (libvirt's createXMLFrom: in
    a directory pool, ``qemu-img convert``, which reads through the backing chain)."""
    _check_volume_spec(spec)
    if spec.backing_volume is not None:
        raise DriverError(f"volume {spec.name!r}: a copy stands alone, it has no backing volume")
    if spec.encryption_secret is not None:
        raise DriverError(f"volume {spec.name!r}: encrypted copies are not supported")
    pool = lookup_pool(conn, spec.pool)
    source, _info = _copy_source(conn, source_pool, source_name, pool, spec)
    return storage_volume_info(spec.pool, pool.createXMLFrom(volume_xml(spec, None), source, 0))


def _copy_source(
    conn: libvirt.virConnect,
    source_pool: str,
    source_name: str,
    pool: libvirt.virStoragePool,
    spec: StorageVolumeSpec,
) -> tuple[libvirt.virStorageVol, StorageVolumeInfo]:
    """The source of a copy into `pool`, checked: not an RBD image (libvirt's directory
    backend would hand qemu-img "pool/image" as a file name), no bigger than `spec`, and
    `spec.name` not taken (an existing copy cannot be known complete)."""
    source = lookup_volume(conn, source_pool, source_name)
    if source.info()[0] == libvirt.VIR_STORAGE_VOL_NETWORK:
        raise DriverError(f"volume {spec.name!r}: copies out of an rbd pool are not supported")
    info = storage_volume_info(source_pool, source)
    if spec.capacity_bytes < info.capacity_bytes:
        raise DriverError(
            f"volume {spec.name!r}: {spec.capacity_bytes} bytes cannot hold a copy of "
            f"{source_name!r} ({info.capacity_bytes} bytes)"
        )
    check_name("volume", spec.name)
    try:
        pool.storageVolLookupByName(spec.name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
    else:
        raise SpecConflict(
            f"volume {spec.name!r} exists: a copy cannot be known complete; delete it first"
        )
    return source, info


def plan_rbd_copy(
    conn: libvirt.virConnect, source_pool: str, source_name: str, spec: StorageVolumeSpec
) -> RbdCopy | None:
    """For a copy into an rbd pool (rbd.py): check it as `copy_storage_volume` does, create
    the empty image and say what to write into it; None when `spec.pool` is not an rbd
    pool (libvirt copies). libvirt's test driver holds no data: the image is made, and
    there is nothing to write (None too)."""
    pool = lookup_pool(conn, spec.pool)
    rbd = rbd_source(pool.XMLDesc(0))
    if rbd is None:
        return None
    _check_volume_spec(spec)
    _check_rbd_volume(spec)
    _source, info = _copy_source(conn, source_pool, source_name, pool, spec)
    pool.createXML(volume_xml(spec, None), 0)
    if is_test_driver(conn):
        return None
    return RbdCopy(
        source_path=info.path, source_format=info.format or "raw", rbd=rbd, image=spec.name
    )


def resize_storage_volume(
    conn: libvirt.virConnect, pool: str, name: str, capacity_bytes: int
) -> None:
    vol = lookup_volume(conn, pool, name)
    current = storage_volume_info(pool, vol).capacity_bytes
    if capacity_bytes == current:
        return
    if capacity_bytes < current:
        raise DriverError(
            f"volume {name!r}: refusing to shrink from {current} to {capacity_bytes} bytes "
            "(data would be lost)"
        )
    vol.resize(capacity_bytes, 0)


def refresh_pool(pool: libvirt.virStoragePool) -> None:
    """Re-read a pool's directory: files made behind libvirt's back (QEMU's console logs)
    become volumes. Busy (an upload in progress): keep what it knows."""
    try:
        pool.refresh(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
            raise


def _lookup_refreshed(conn: libvirt.virConnect, pool: str, name: str) -> libvirt.virStorageVol:
    """The volume, looked up again after a pool refresh if libvirt did not know it."""
    try:
        return lookup_volume(conn, pool, name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
    refresh_pool(lookup_pool(conn, pool))
    return lookup_volume(conn, pool, name)


def lookup_to_erase(conn: libvirt.virConnect, pool: str, name: str) -> libvirt.virStorageVol | None:
    """The volume to erase, or None when there is nothing to erase: no such volume or pool,
    or libvirt's test driver (which holds no data)."""
    if is_test_driver(conn):
        return None
    try:
        return _lookup_refreshed(conn, pool, name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (
            libvirt.VIR_ERR_NO_STORAGE_VOL,
            libvirt.VIR_ERR_NO_STORAGE_POOL,
        ):
            return None
        raise


def file_extent(vol: libvirt.virStorageVol) -> tuple[int, bool] | None:
    """(length, has holes) of the volume's file: one with holes (its allocation is less than
    its length) libvirt's zero wipe would truncate instead of overwriting. None for a volume
    that is not a file."""
    kind, _capacity, allocation = vol.info()
    if kind != libvirt.VIR_STORAGE_VOL_FILE:
        return None
    _kind, _capacity, length = vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)
    return int(length), int(allocation) < int(length)


def list_storage_volumes(conn: libvirt.virConnect, pool: str) -> list[StorageVolumeInfo]:
    found = lookup_pool(conn, pool)
    refresh_pool(found)
    return [storage_volume_info(pool, vol) for vol in found.listAllVolumes(0)]


def delete_storage_volume(conn: libvirt.virConnect, pool: str, name: str, *, wipe: bool) -> None:
    try:
        vol = _lookup_refreshed(conn, pool, name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (
            libvirt.VIR_ERR_NO_STORAGE_VOL,
            libvirt.VIR_ERR_NO_STORAGE_POOL,
        ):
            return
        raise
    # An RBD image's removal deletes its objects (module docstring): no wipe before.
    if wipe and not is_test_driver(conn) and vol.info()[0] != libvirt.VIR_STORAGE_VOL_NETWORK:
        vol.wipe(0)  # VIR_STORAGE_VOL_WIPE_ALG_ZERO
    try:
        vol.delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
