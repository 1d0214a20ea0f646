"""Worker handlers of volume_snapshot.create and volume_snapshot.delete on a directory
backend: the snapshot is the standalone qcow2 file `volsnap-<id>` (hosts.naming) in the
volumes pool of its volume's host.

A volume attached to a running guest is copied live through the hypervisor's backup job:
filesystem-consistent where the guest's agent froze its file systems for that instant,
crash-consistent where no agent answers (our test image runs none); any other
is copied from its file, which nothing writes to then (consistent). Each run starts by
erasing what an interrupted one left (a copy cannot be known complete); a failed create
erases what it made and leaves the snapshot in `error` with a fault. Deleting erases the
file as a volume's is (overwritten, then removed) and records how."""

from __future__ import annotations

import logging

from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from hypervisor.base import FROZEN, DriverError, Hypervisor, StorageVolumeSpec
from images.host_cache import stores_no_data
from operations.models import Operation
from operations.services.outcomes import fail, succeed
from operations.services.runs import step
from volumes.models import Volume, VolumeSnapshot
from volumes.selectors import active_attachment
from volumes.states import VolumeSnapshotStatus
from volumes.worker.handlers import (
    ERASED_BY_NOTHING,
    ERASED_BY_WIPE,
    GIB,
    ensure_pool,
    record_erasure,
    volumes_pool,
)

logger = logging.getLogger(__name__)
Consistency = VolumeSnapshot.Consistency


def _host(snapshot: VolumeSnapshot) -> Host:
    if snapshot.host is None:
        raise DriverError("the snapshot has no host (only directory volumes are supported yet)")
    return snapshot.host


def snapshot_spec(snapshot: VolumeSnapshot) -> StorageVolumeSpec:
    return StorageVolumeSpec(
        pool=volumes_pool(_host(snapshot)),
        name=naming.volume_snapshot(snapshot.pk),
        capacity_bytes=snapshot.size_gb * GIB,
        format="qcow2",
    )


def copy_volume(hv: Hypervisor, snapshot: VolumeSnapshot) -> str:
    """The volume's content now, into the snapshot's file (made anew); its consistency."""
    host, spec = _host(snapshot), snapshot_spec(snapshot)
    volume: Volume = snapshot.volume
    hv.delete_storage_volume(spec.pool, spec.name)  # an interrupted copy: erased, made anew
    if stores_no_data(host):
        # libvirt's fake keeps no data and has no backup job: an empty volume stands in.
        hv.create_storage_volume(spec)
        return Consistency.CONSISTENT
    attachment = active_attachment(volume.pk)
    if attachment is not None:
        live = hv.backup_attached_disk(
            naming.domain(attachment.instance_id), attachment.device, spec.pool, spec.name
        )
        if live == FROZEN:
            return Consistency.FILESYSTEM_CONSISTENT
        if live is not None:
            return Consistency.CRASH_CONSISTENT
    hv.copy_storage_volume(spec.pool, naming.volume(volume.pk), spec)
    return Consistency.CONSISTENT


def run_create(operation: Operation, snapshot: VolumeSnapshot) -> None:
    host = _host(snapshot)
    hv = hypervisor_for(host)
    made: dict[str, str] = {}
    try:
        with step(operation, "pool"):
            ensure_pool(hv, host)
        with step(operation, "copy"):
            made["consistency"] = copy_volume(hv, snapshot)
    except Exception as exc:
        cleanup = ""
        try:
            spec = snapshot_spec(snapshot)
            hv.delete_storage_volume(spec.pool, spec.name)
        except DriverError as cleanup_exc:
            logger.warning("snapshot %s: partial copy not removed: %s", snapshot.pk, cleanup_exc)
            cleanup = f" (cleanup incomplete, an operator is told: {cleanup_exc})"
        fail(
            operation, snapshot, "snapshot", DriverError(f"{exc}{cleanup}"),
            status=VolumeSnapshotStatus.ERROR,
        )  # fmt: skip
        return
    succeed(operation, status=VolumeSnapshotStatus.AVAILABLE, consistency=made["consistency"])


def run_delete(operation: Operation, snapshot: VolumeSnapshot) -> None:
    """Erase then remove the snapshot's file (the same erase as a volume's: overwritten
    before the space is freed); `deleted` with `erased_by`, on the operation and in the
    audit chain (`volume_snapshot.erase`)."""
    host = _host(snapshot)
    hv = hypervisor_for(host)
    spec = snapshot_spec(snapshot)
    erased_by = ERASED_BY_NOTHING if stores_no_data(host) else ERASED_BY_WIPE
    try:
        with step(operation, "erase"):
            hv.delete_storage_volume(spec.pool, spec.name)
    except Exception as exc:
        fail(operation, snapshot, "delete", exc, status=VolumeSnapshotStatus.ERROR)
        return
    record_erasure(operation, snapshot, erased_by, status=VolumeSnapshotStatus.DELETED)
