"""How the operation pipeline reaches volumes (operations.registry.TargetType)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from operations.models import Operation
from volumes.models import Volume, VolumeAttachment, VolumeSnapshot
from volumes.states import VolumeSnapshotStatus, VolumeStatus


def load_volume(volume_id: uuid.UUID) -> Volume:
    return Volume.objects.select_related("host__zone", "volume_type", "tenant").get(pk=volume_id)


def settle_volume(volume_id: uuid.UUID, fault: str, changes: Mapping[str, Any]) -> None:
    """The operation's outcome: `fault` and `changes` (its status, at least) on the volume."""
    Volume.objects.filter(pk=volume_id).update(fault=fault, updated_at=timezone.now(), **changes)


def abandon_volume(operation: Operation, reason: str) -> None:
    """Release the volume of an abandoned operation so its tenant can act again: one being
    created or deleted goes to `error` (what is on the host is unknown; deleting it again
    erases whatever is there); one being extended is `available` (`in-use` if attached) at
    its old size (a qcow2 grows by rewriting its header, all or nothing; the next extend
    asks again); one being exported is `available` (its export goes to `error`)."""
    volume = Volume.objects.filter(pk=operation.target_id).first()
    if volume is None:
        return
    changes: dict[str, Any] = {"fault": reason, "updated_at": timezone.now()}
    if volume.status in (VolumeStatus.CREATING, VolumeStatus.DELETING):
        changes["status"] = VolumeStatus.ERROR
    elif volume.status == VolumeStatus.EXPORTING:
        changes["status"] = VolumeStatus.AVAILABLE
    elif volume.status == VolumeStatus.EXTENDING:
        attached = VolumeAttachment.objects.filter(
            volume_id=volume.pk, detached_at__isnull=True
        ).exists()
        changes["status"] = VolumeStatus.IN_USE if attached else VolumeStatus.AVAILABLE
        changes["size_gb"] = int(operation.params.get("from_gb") or volume.size_gb)
    Volume.objects.filter(pk=volume.pk).update(**changes)


def load_volume_snapshot(snapshot_id: uuid.UUID) -> VolumeSnapshot:
    return VolumeSnapshot.objects.select_related("host__zone", "volume", "tenant").get(
        pk=snapshot_id
    )


def settle_volume_snapshot(snapshot_id: uuid.UUID, fault: str, changes: Mapping[str, Any]) -> None:
    VolumeSnapshot.objects.filter(pk=snapshot_id).update(
        fault=fault, updated_at=timezone.now(), **changes
    )


def abandon_volume_snapshot(operation: Operation, reason: str) -> None:
    """An abandoned snapshot operation: the snapshot goes to `error` (what its file holds is
    unknown; deleting it erases whatever is there). A create's volume is free again at once:
    nothing counts as `creating` any more."""
    VolumeSnapshot.objects.filter(
        pk=operation.target_id,
        status__in=(VolumeSnapshotStatus.CREATING, VolumeSnapshotStatus.DELETING),
    ).update(status=VolumeSnapshotStatus.ERROR, fault=reason, updated_at=timezone.now())
