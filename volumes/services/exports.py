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

from iaas.audit import Actor
from iaas.errors import ConflictError, InvalidRequest
from images.models import Export
from images.services.exports import export_begin
from operations.models import Operation
from operations.services.deadlines import copy_deadline_params
from operations.services.outbox import operation_queue
from volumes.models import Volume, VolumeSnapshot
from volumes.states import VOLUME_LIFECYCLE, VolumeSnapshotStatus


@transaction.atomic
def volume_export(*, actor: Actor, volume: Volume) -> tuple[Export, Operation]:
    """Accept exporting an `available` volume (409 `wrong_state` otherwise, attached ones
    included: their copy would not be consistent): 403 `quota_exceeded` past
    EXPORTS_PER_TENANT live exports, 409 `residency_unsatisfiable` / `no_export_store`
    when its zone cannot keep the copy, 400 `not_supported_yet` for an encrypted volume;
    nothing changes on a refusal."""
    if volume.volume_type.encrypted:
        # Its file is LUKS ciphertext under a key the tenant never holds: a useful copy must
        # be decrypted on the host with the volume's secret (not built yet); refused.
        raise InvalidRequest(
            "Exports of encrypted volumes are not supported yet.",
            code="not_supported_yet",
            details={"volume_type": volume.volume_type.name},
        )
    VOLUME_LIFECYCLE.check(volume, "export")
    if volume.host is None:
        raise ConflictError("This volume has no host to act on.", code="wrong_state")
    export = export_begin(
        tenant=volume.tenant,
        source_kind=Export.SourceKind.VOLUME,
        source_id=volume.pk,
        name=f"{volume.name}.qcow2",
        zone=volume.zone,
    )
    VOLUME_LIFECYCLE.begin(volume, "export")
    operation = operation_queue(
        actor=actor,
        tenant=volume.tenant,
        target=volume,
        action="volume.export",
        host_name=volume.host.name,
        params={"export": str(export.pk), **copy_deadline_params(volume.size_gb)},
    )
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
    export = export_begin(
        tenant=snapshot.tenant,
        source_kind=Export.SourceKind.VOLUME_SNAPSHOT,
        source_id=snapshot.pk,
        name=f"{snapshot.name}.qcow2",
        zone=snapshot.zone,
    )
    operation = operation_queue(
        actor=actor,
        tenant=snapshot.tenant,
        target=snapshot,
        action="volume_snapshot.export",
        host_name=snapshot.host.name,
        params={"export": str(export.pk), **copy_deadline_params(snapshot.size_gb)},
    )
    return export, operation
