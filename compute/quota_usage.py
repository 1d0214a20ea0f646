"""How compute resources count against quotas: always from the resource rows themselves."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from compute.models import Instance, KeyPair, ServerGroup
from tenants.models import Tenant


def keypairs_in_use(tenant: Tenant) -> int:
    return KeyPair.objects.filter(tenant=tenant).count()


def _live_instances(tenant: Tenant) -> QuerySet[Instance]:
    """Instances that hold resources: every one not deleted (an instance in error keeps its
    quota until the tenant deletes it, as it keeps its name and history)."""
    return Instance.objects.filter(tenant=tenant).exclude(status=Instance.Status.DELETED)


#: The quota resources one instance holds, counted together by `instance_usage`.
INSTANCE_RESOURCES = ("instances", "vcpus", "ram_mb", "disk_gb")


def instance_usage(tenant: Tenant) -> dict[str, int]:
    """The tenant's live instances, vCPUs, RAM and disk, in one query."""
    totals = _live_instances(tenant).aggregate(
        instances=Count("pk"), vcpus=Sum("vcpus"), ram_mb=Sum("memory_mb"),
        disk_gb=Sum("disk_gb"),
    )  # fmt: skip
    return {resource: int(totals[resource] or 0) for resource in INSTANCE_RESOURCES}


def server_groups_in_use(tenant: Tenant) -> int:
    return ServerGroup.objects.filter(tenant=tenant).count()
