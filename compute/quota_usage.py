"""How compute resources count against quotas: always from the resource rows themselves."""

from __future__ import annotations

from django.db.models import QuerySet, Sum

from compute.models import Instance, KeyPair, ServerGroup
from tenants.models import Tenant


def keypairs_in_use(tenant: Tenant) -> int:
    return KeyPair.objects.filter(tenant=tenant).count()


def _live_instances(tenant: Tenant) -> QuerySet[Instance]:
    """Instances that hold resources: every one not deleted (an instance in error keeps its
    quota until the tenant deletes it, as it keeps its name and history)."""
    return Instance.objects.filter(tenant=tenant).exclude(status=Instance.Status.DELETED)


def instances_in_use(tenant: Tenant) -> int:
    return _live_instances(tenant).count()


def _total(tenant: Tenant, field: str) -> int:
    return int(_live_instances(tenant).aggregate(total=Sum(field))["total"] or 0)


def vcpus_in_use(tenant: Tenant) -> int:
    return _total(tenant, "vcpus")


def ram_mb_in_use(tenant: Tenant) -> int:
    return _total(tenant, "memory_mb")


def disk_gb_in_use(tenant: Tenant) -> int:
    return _total(tenant, "disk_gb")


def server_groups_in_use(tenant: Tenant) -> int:
    return ServerGroup.objects.filter(tenant=tenant).count()
