"""Tenant-scoped reads of volumes and volume types, through `tenants.selectors.tenant_scoped`:
a foreign volume is not found (404). Deleted volumes are gone from the API."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from hosts.residency import Holding
from tenants.models import Tenant
from tenants.selectors import tenant_scoped
from volumes.models import Volume, VolumeType
from volumes.states import VolumeStatus


def volume_list(tenant: Tenant) -> QuerySet[Volume]:
    return (
        tenant_scoped(Volume.objects.all(), tenant)
        .exclude(status=VolumeStatus.DELETED)
        .select_related("volume_type", "zone")
    )


def volume_find(tenant: Tenant, ref: str) -> Volume | None:
    try:
        return volume_list(tenant).filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return None


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
