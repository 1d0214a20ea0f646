"""Worker handlers of volume.export and volume_snapshot.export: the volume's (or the
snapshot's) qcow2 file streamed from its host into the export's image store
(images.services.exports), hashed on the way.

The volume is `exporting` meanwhile (detached: nothing writes to it), so the copy is the
volume as it stood; a snapshot never changes once made. The file is downloaded as it is: a
directory volume is a standalone qcow2 (made empty, or copied from an image through its
backing chain), so the download stands alone too. Idempotent: an export already available is
left alone; a partial file of an interrupted run is erased and the download made anew.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from hypervisor.base import DriverError, Hypervisor
from images import files as image_files
from images.host_cache import stores_no_data
from images.models import Export
from images.services import exports as export_services
from images.services.stores import ResidencyUnsatisfiable
from operations.models import Operation
from operations.services import deadlines
from operations.services.outcomes import fail, succeed
from operations.services.runs import step, worker_actor
from volumes.models import Volume, VolumeSnapshot
from volumes.states import VolumeSnapshotStatus, VolumeStatus
from volumes.worker.handlers import GIB, volumes_pool

logger = logging.getLogger(__name__)

#: Room for a qcow2 file's metadata beyond the volume's virtual size, in the download bound.
QCOW2_OVERHEAD_BYTES = 256 * 1024**2


def _export(operation: Operation) -> Export:
    return Export.objects.select_related("store__zone", "tenant").get(pk=operation.params["export"])


def store_copy(hv: Hypervisor, volume: Volume, export: Export) -> None:
    """Stream the volume's file into the export's store and make the export available."""
    assert volume.host is not None
    _copy_file(hv, volume.host, naming.volume(volume.pk), volume.size_gb, export)


def snapshot_store_copy(hv: Hypervisor, snapshot: VolumeSnapshot, export: Export) -> None:
    """Stream the snapshot's file into the export's store and make the export available."""
    assert snapshot.host is not None
    _copy_file(hv, snapshot.host, naming.volume_snapshot(snapshot.pk), snapshot.size_gb, export)


def _copy_file(hv: Hypervisor, host: Host, name: str, size_gb: int, export: Export) -> None:
    """Stream `name` of `host`'s volumes pool (a disk of `size_gb` GiB) into the export's
    store; the export becomes available. Idempotent (see the module's docstring)."""
    export.refresh_from_db(fields=["status"])
    if export.status == Export.Status.AVAILABLE:
        return
    # Before a byte leaves the host: the policy may have narrowed since the request.
    export_services.export_zone_check(export.tenant, export.store.zone)
    pool = volumes_pool(host)
    export_services.export_partials_erase(export)
    limit = size_gb * GIB + QCOW2_OVERHEAD_BYTES
    directory = export_services.export_directory(export.store)
    prefix = export_services.part_prefix(export)
    try:
        with image_files.Receiver(directory=directory, prefix=prefix, max_bytes=limit) as rx:
            if stores_no_data(host):
                # libvirt's fake keeps no volume data and cannot download (Unsupported): what
                # it holds is an empty disk of the volume's size, and that is the export.
                rx.write(image_files.empty_qcow2(hv.storage_volume_info(pool, name).capacity_bytes))
            else:
                hv.download_storage_volume(pool, name, rx.write)
            received = rx.finish()
    except image_files.TooLarge as exc:
        raise DriverError(f"the file is larger than expected ({limit} bytes)") from exc
    export_services.export_save(actor=worker_actor(), export_id=export.pk, received=received)


def run_export(operation: Operation, volume: Volume) -> None:
    """Copy the volume out; it is `available` again either way. A failure erases any partial
    file and puts the export in `error` with the reason (its owner deletes it)."""
    _run(operation, volume, volume.host, store_copy, VolumeStatus.AVAILABLE)


def run_snapshot_export(operation: Operation, snapshot: VolumeSnapshot) -> None:
    """Copy the snapshot out; it stays `available` either way (failures as a volume's)."""
    _run(operation, snapshot, snapshot.host, snapshot_store_copy, VolumeSnapshotStatus.AVAILABLE)


def _run(
    operation: Operation,
    source: Any,
    host: Host | None,
    copy: Callable[[Hypervisor, Any, Export], None],
    status: str,
) -> None:
    """Run `copy` of `source` (a volume or a snapshot, on `host`) into the operation's
    export as its one step; `source` ends in `status` either way."""
    export = _export(operation)
    try:
        if host is None:
            raise DriverError(f"the {operation.target_type.replace('_', ' ')} has no host")
        hv = hypervisor_for(host)
        with step(operation, "store_copy"):
            copy(hv, source, export)
    except Exception as exc:
        refused = isinstance(exc, ResidencyUnsatisfiable)
        export_services.export_failed(
            actor=worker_actor(),
            export_id=export.pk,
            message=f"The export {'was refused' if refused else 'failed'}: {exc}",
        )
        fail(operation, source, "export", exc, status=status)
        return
    succeed(operation, status=status)


def abandon_export(operation: Operation, reason: str) -> None:
    """The export was abandoned (past its deadline, its host lost): it will never be
    filled; the volume itself is released by its target type (volumes.worker.targets)."""
    export_services.export_failed(
        actor=deadlines.SWEEPER,
        export_id=operation.params.get("export", ""),
        message=f"The export failed: {reason}",
    )
