"""Tenant-scoped reads of volumes and volume types, through `tenants.selectors.tenant_scoped`:
a foreign volume is not found (404). Deleted volumes are gone from the API."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, Q, QuerySet

from hosts.residency import Holding
from images.models import Export
from tenants.models import Tenant
from tenants.selectors import tenant_scoped
from volumes.models import Volume, VolumeAttachment, VolumeSnapshot, VolumeType
from volumes.states import VolumeSnapshotStatus, VolumeStatus


def volume_list(tenant: Tenant) -> QuerySet[Volume]:
    """The tenant's volumes, each with its active attachment (at most one) prefetched as
    `volume.active_attachments`."""
    active = VolumeAttachment.objects.filter(detached_at__isnull=True)
    return (
        tenant_scoped(Volume.objects.all(), tenant)
        .exclude(status=VolumeStatus.DELETED)
        .select_related("volume_type", "zone")
        .prefetch_related(Prefetch("attachments", queryset=active, to_attr="active_attachments"))
    )


def instance_volumes(tenant: Tenant, instance_id: uuid.UUID) -> QuerySet[Volume]:
    """The tenant's volumes attached to the instance `instance_id` (or being attached or
    detached), in the order they were attached."""
    return (
        volume_list(tenant)
        .filter(attachments__instance_id=instance_id, attachments__detached_at__isnull=True)
        .order_by("attachments__created_at")
    )


def attachments_of(instance_id: uuid.UUID) -> list[VolumeAttachment]:
    """The instance's active attachments, with their volumes, in the order they were made
    (for its domain's definition and the choice of a free device; not tenant-scoped: the
    caller holds the instance)."""
    return list(
        VolumeAttachment.objects.filter(instance_id=instance_id, detached_at__isnull=True)
        .select_related("volume", "host")
        .order_by("created_at", "id")
    )


def boot_attachment(instance_id: uuid.UUID) -> VolumeAttachment | None:
    """The instance's boot volume attachment (``vda``), if it boots from a volume."""
    return (
        VolumeAttachment.objects.select_related("volume", "host")
        .filter(instance_id=instance_id, device="vda", detached_at__isnull=True)
        .first()
    )


def volume_find(tenant: Tenant, ref: str) -> Volume | None:
    try:
        return volume_list(tenant).filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return None


def volume_snapshot_list(tenant: Tenant) -> QuerySet[VolumeSnapshot]:
    """The tenant's volume snapshots (deleted ones are gone from the API)."""
    return (
        tenant_scoped(VolumeSnapshot.objects.all(), tenant)
        .exclude(status=VolumeSnapshotStatus.DELETED)
        .select_related("zone")
    )


def volume_snapshot_find(tenant: Tenant, ref: str) -> VolumeSnapshot | None:
    try:
        return volume_snapshot_list(tenant).filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return None


def active_attachment(volume_id: uuid.UUID) -> VolumeAttachment | None:
    """The volume's attachment now (one at most: a unique constraint), or None."""
    return VolumeAttachment.objects.filter(volume_id=volume_id, detached_at__isnull=True).first()


def snapshot_in_progress(volume_id: uuid.UUID) -> bool:
    """Whether a snapshot of the volume is being made (its worker reads the volume)."""
    return VolumeSnapshot.objects.filter(
        volume_id=volume_id, status=VolumeSnapshotStatus.CREATING
    ).exists()


def snapshot_export_in_progress(snapshot_id: uuid.UUID) -> bool:
    """Whether an export of the snapshot is being made (its worker reads the snapshot)."""
    return Export.objects.filter(
        source_kind=Export.SourceKind.VOLUME_SNAPSHOT,
        source_id=snapshot_id,
        status=Export.Status.CREATING,
    ).exists()


def volume_type_list(tenant: Tenant) -> QuerySet[VolumeType]:
    """The types this tenant may create volumes of: the public ones and its private ones."""
    return VolumeType.objects.filter(Q(is_public=True) | Q(access=tenant)).distinct()


def volume_type_find(tenant: Tenant, ref: str) -> VolumeType | None:
    """A type the tenant may use, by id or name."""
    types = volume_type_list(tenant)
    try:
        return types.filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return types.filter(name=ref).first()


def volume_type_list_all() -> QuerySet[VolumeType]:
    """Operators only: every type, with the tenants of the private ones."""
    return VolumeType.objects.prefetch_related("access")


def volume_holdings(tenant: Tenant) -> list[Holding]:
    """The tenant's volumes with the zone their storage lies in ("where is my data")."""
    volumes = tenant_scoped(Volume.objects.all(), tenant).exclude(status=VolumeStatus.DELETED)
    return [
        Holding(id=str(volume.pk), name=volume.name, status=volume.status, zone_id=volume.zone_id)
        for volume in volumes.order_by("name", "id")
    ]


def volume_snapshot_holdings(tenant: Tenant) -> list[Holding]:
    """The tenant's volume snapshots with the zone their storage lies in."""
    return [
        Holding(id=str(s.pk), name=s.name, status=s.status, zone_id=s.zone_id)
        for s in volume_snapshot_list(tenant).order_by("name", "id")
    ]
