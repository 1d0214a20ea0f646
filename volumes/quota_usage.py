"""How volumes count against quotas: from the volume rows themselves."""

from __future__ import annotations

from django.db.models import Count, Sum

from tenants.models import Tenant
from volumes.models import Volume
from volumes.states import VolumeStatus

#: The quota resources volumes hold, counted together by `volume_usage`.
VOLUME_RESOURCES = ("volumes", "volume_gb")


def volume_usage(tenant: Tenant) -> dict[str, int]:
    """The tenant's volumes and their GiB, in one query: every volume not deleted (one in
    error keeps its quota until deleted; one being extended counts at its new size, claimed
    when the extend was accepted)."""
    totals = (
        Volume.objects.filter(tenant=tenant)
        .exclude(status=VolumeStatus.DELETED)
        .aggregate(volumes=Count("pk"), volume_gb=Sum("size_gb"))
    )
    return {resource: int(totals[resource] or 0) for resource in VOLUME_RESOURCES}
