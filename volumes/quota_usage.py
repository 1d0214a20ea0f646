"""How volumes and their snapshots count against quotas: from their rows themselves."""

from __future__ import annotations

from django.db.models import Count, Sum

from tenants.models import Tenant
from volumes.models import Volume, VolumeSnapshot
from volumes.states import VolumeSnapshotStatus, VolumeStatus

#: The quota resources volumes hold, counted together by `volume_usage`.
VOLUME_RESOURCES = ("volumes", "volume_gb", "volume_snapshots")


def volume_usage(tenant: Tenant) -> dict[str, int]:
    """The tenant's volumes, snapshots and their GiB, in two queries: every volume and
    snapshot not deleted (one in error keeps its quota until deleted; a volume being
    extended counts at its new size, claimed when the extend was accepted). A snapshot's
    GiB count in `volume_gb` as Cinder's do in `gigabytes` (docs/decisions.md): it is a full
    copy, holding as much storage as its volume."""
    volumes = (
        Volume.objects.filter(tenant=tenant)
        .exclude(status=VolumeStatus.DELETED)
        .aggregate(volumes=Count("pk"), volume_gb=Sum("size_gb"))
    )
    snapshots = (
        VolumeSnapshot.objects.filter(tenant=tenant)
        .exclude(status=VolumeSnapshotStatus.DELETED)
        .aggregate(count=Count("pk"), gb=Sum("size_gb"))
    )
    return {
        "volumes": int(volumes["volumes"] or 0),
        "volume_gb": int(volumes["volume_gb"] or 0) + int(snapshots["gb"] or 0),
        "volume_snapshots": int(snapshots["count"] or 0),
    }
