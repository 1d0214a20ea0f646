"""Exporting a volume or a volume snapshot (issue 11 item 9: a tenant leaves with its data).
The API cannot read a host's storage (DESIGN §9), so the request is an operation: the volume
goes `exporting` (only from `available`: detached, nothing writes to it while it is read),
an Export row (images.models.Export, `creating`) is recorded in an image store of the
volume's own zone, and a worker on the volume's host streams the qcow2 file into it
(volumes.worker.export). A snapshot never changes once made: it is exported from `available`
and stays so; its delete is refused while an export of it is being made (both decided under
the snapshot's row lock)."""

from __future__ import annotations

from django.db import transaction

from hosts.models import Host
from iaas.audit import Actor
from iaas.errors import ConflictError
from images.models import Export
from images.services.exports import export_begin
from operations.models import Operation
from operations.services.deadlines import copy_deadline_params
from operations.services.outbox import operation_queue
from volumes.models import Volume, VolumeSnapshot
from volumes.services.refusals import refuse_unbuilt
from volumes.states import VOLUME_LIFECYCLE, VolumeSnapshotStatus


@transaction.atomic
def volume_export(*, actor: Actor, volume: Volume) -> tuple[Export, Operation]:
    """Accept exporting an `available` volume (409 `wrong_state` otherwise, attached ones
    included: their copy would not be consistent): 403 `quota_exceeded` past
    EXPORTS_PER_TENANT live exports, 409 `residency_unsatisfiable` / `no_export_store`
    when its zone cannot keep the copy, 400 `not_supported_yet` for an encrypted volume or
    one on Ceph; nothing changes on a refusal."""
    refuse_unbuilt(volume, "Exports")
    VOLUME_LIFECYCLE.check(volume, "export")
    if volume.host is None:
        raise ConflictError("This volume has no host to act on.", code="wrong_state")
    export, operation = _export_accept(
        actor=actor,
        source=volume,
        kind=Export.SourceKind.VOLUME,
        action="volume.export",
        host=volume.host,
    )
    VOLUME_LIFECYCLE.begin(volume, "export")  # a verb that won meanwhile: all rolled back
    return export, operation


@transaction.atomic
def volume_snapshot_export(*, actor: Actor, snapshot: VolumeSnapshot) -> tuple[Export, Operation]:
    """Accept exporting an `available` snapshot (409 `wrong_state` otherwise), with the same
    refusals as a volume's (quota of live exports, the zone's store, residency); the
    snapshot stays `available` (nothing writes to it) while a worker on its host streams its
    file into the export. Nothing changes on a refusal."""
    snapshot = (
        VolumeSnapshot.objects.select_for_update(of=("self",))
        .select_related("host", "zone", "tenant")
        .get(pk=snapshot.pk)
    )
    if snapshot.status != VolumeSnapshotStatus.AVAILABLE or snapshot.host is None:
        raise ConflictError(
            f"The snapshot is {snapshot.status}; it can be exported only when it is available.",
            code="wrong_state",
            details={"status": snapshot.status},
        )
    return _export_accept(
        actor=actor,
        source=snapshot,
        kind=Export.SourceKind.VOLUME_SNAPSHOT,
        action="volume_snapshot.export",
        host=snapshot.host,
    )


def _export_accept(
    *, actor: Actor, source: Volume | VolumeSnapshot, kind: str, action: str, host: Host
) -> tuple[Export, Operation]:
    """Record the export of `source` (in its zone, named after it) and queue the operation
    that fills it on `host`, with a deadline that grows with its size."""
    export = export_begin(
        tenant=source.tenant,
        source_kind=kind,
        source_id=source.pk,
        name=f"{source.name}.qcow2",
        zone=source.zone,
    )
    operation = operation_queue(
        actor=actor,
        tenant=source.tenant,
        target=source,
        action=action,
        host_name=host.name,
        params={"export": str(export.pk), **copy_deadline_params(source.size_gb)},
    )
    return export, operation
