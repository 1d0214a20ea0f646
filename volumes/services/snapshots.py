"""Snapshots of volumes (DESIGN §8, issue 11 item 3): accepted in the API's transaction
(quota, the volume's status under its row lock), made by a worker on the volume's host
(volumes.worker.snapshots). A snapshot is a standalone copy in the same pool: it outlives its
volume, and new volumes are copied from it (volumes.services.volumes.volume_create)."""

from __future__ import annotations

from django.db import transaction

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError
from network.services.names import check_description, check_name
from operations.models import Operation
from operations.services.outbox import operation_create, operation_queue
from tenants.quotas import quota_enforce_many
from volumes.models import Volume, VolumeSnapshot
from volumes.selectors import snapshot_export_in_progress, snapshot_in_progress
from volumes.services.refusals import refuse_unbuilt
from volumes.states import SNAPSHOT_LIFECYCLE, VolumeSnapshotStatus, VolumeStatus

#: The volume statuses a snapshot may be taken in: nothing else is changing the volume (an
#: `in-use` volume is snapshotted live, crash-consistent).
SNAPSHOTTABLE = frozenset({VolumeStatus.AVAILABLE, VolumeStatus.IN_USE})


def refuse_while_snapshotting(volume: Volume, verb: str) -> None:
    """409 `snapshot_in_progress` while a snapshot of `volume` is being made: the copy reads
    it (the caller holds the volume's row lock, as `volume_snapshot_create` does, so the two
    are decided one after the other)."""
    if snapshot_in_progress(volume.pk):
        raise ConflictError(
            f"A snapshot of this volume is being made; it can {verb} once that ends.",
            code="snapshot_in_progress",
            details={"status": volume.status},
        )


@transaction.atomic
def volume_snapshot_create(
    *, actor: Actor, volume: Volume, name: str, description: str = ""
) -> tuple[VolumeSnapshot, Operation]:
    """Accept a snapshot (`creating`) of the tenant's `available` or `in-use` volume (409
    `wrong_state` otherwise; `snapshot_in_progress` while another one is being made),
    counted in the `volume_snapshots` quota and, at the volume's size, in `volume_gb`. A
    worker on the volume's host copies it: standalone, in the same pool."""
    check_name("snapshot", name)
    check_description(description)
    volume = (
        Volume.objects.select_for_update(of=("self",))
        .select_related("zone", "host", "volume_type")
        .get(pk=volume.pk)
    )
    refuse_unbuilt(volume, "Snapshots")
    if volume.status not in SNAPSHOTTABLE:
        raise ConflictError(
            f"The volume is {volume.status}; it can be snapshotted only when it is available "
            "or in-use.",
            code="wrong_state",
            details={"status": volume.status},
        )
    refuse_while_snapshotting(volume, "be snapshotted again")
    if volume.host is None:
        raise ConflictError("This volume has no host to act on.", code="wrong_state")
    quota_enforce_many(volume.tenant, {"volume_snapshots": 1, "volume_gb": volume.size_gb})
    snapshot = VolumeSnapshot.objects.create(
        tenant=volume.tenant,
        volume=volume,
        name=name,
        description=description,
        size_gb=volume.size_gb,
        status=VolumeSnapshotStatus.CREATING,
        zone=volume.zone,
        host=volume.host,
    )
    operation = operation_create(
        actor=actor,
        tenant=volume.tenant,
        action="volume_snapshot.create",
        target_id=snapshot.pk,
        host_name=volume.host.name,
        params={"volume": str(volume.pk)},
    )
    audit_record(
        actor=actor,
        action="volume_snapshot.create",
        tenant_id=volume.tenant_id,
        target=snapshot,
        details={
            "volume": str(volume.pk),
            "size_gb": volume.size_gb,
            "volume_status": volume.status,
            "operation": str(operation.pk),
        },
    )
    return snapshot, operation


@transaction.atomic
def volume_snapshot_update(
    *,
    actor: Actor,
    snapshot: VolumeSnapshot,
    name: str | None = None,
    description: str | None = None,
) -> VolumeSnapshot:
    """Rename a snapshot or change its description, in any status."""
    snapshot = VolumeSnapshot.objects.select_for_update().get(pk=snapshot.pk)
    changes: dict[str, str] = {}
    if name is not None and name != snapshot.name:
        changes["name"] = snapshot.name = check_name("snapshot", name)
    if description is not None and description != snapshot.description:
        changes["description"] = snapshot.description = check_description(description)
    if changes:
        snapshot.save(update_fields=[*changes, "updated_at"])
        audit_record(
            actor=actor, action="volume_snapshot.update", tenant_id=snapshot.tenant_id,
            target=snapshot, details=changes,
        )  # fmt: skip
    return snapshot


@transaction.atomic
def volume_snapshot_delete(*, actor: Actor, snapshot: VolumeSnapshot) -> Operation:
    """Accept deleting an `available` or `error` snapshot (409 `wrong_state` otherwise;
    409 `snapshot_in_use` while a volume or an export is being made from it): it goes
    `deleting`, and the worker erases its storage as a volume's is (overwritten, then
    removed); it ends
    `deleted` with `erased_by`. Its volume, deleted or not, is not touched."""
    snapshot = (
        VolumeSnapshot.objects.select_for_update(of=("self",))
        .select_related("host")
        .get(pk=snapshot.pk)
    )
    SNAPSHOT_LIFECYCLE.check(snapshot, "delete")
    if Volume.objects.filter(source_snapshot_id=snapshot.pk, status=VolumeStatus.CREATING).exists():
        raise ConflictError(
            "A volume is being created from this snapshot; delete it once that ends.",
            code="snapshot_in_use",
        )
    if snapshot_export_in_progress(snapshot.pk):
        raise ConflictError(
            "An export of this snapshot is being made; delete it once that ends.",
            code="snapshot_in_use",
        )
    if snapshot.host is None:
        raise ConflictError("This snapshot has no host to act on.", code="wrong_state")
    SNAPSHOT_LIFECYCLE.begin(snapshot, "delete")
    return operation_queue(
        actor=actor,
        tenant=snapshot.tenant,
        target=snapshot,
        action="volume_snapshot.delete",
        host_name=snapshot.host.name,
        params={},
    )
