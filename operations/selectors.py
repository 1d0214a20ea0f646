"""Tenant-scoped reads of operations, through `tenants.selectors.tenant_scoped`."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import QuerySet

from operations.models import Operation
from tenants.models import Tenant
from tenants.selectors import tenant_scoped


def operation_list(tenant: Tenant) -> QuerySet[Operation]:
    return tenant_scoped(Operation.objects.all(), tenant)


def operation_history(tenant: Tenant, target_id: uuid.UUID) -> QuerySet[Operation]:
    """The operations of one of the tenant's resources, oldest first."""
    return operation_list(tenant).filter(target_id=target_id).order_by("created_at")


# --- Operators' reads (every tenant's operations; the operator console) ----------------------


def operations_failed_since(since: datetime) -> QuerySet[Operation]:
    """Operations that failed since `since`, newest first, with their tenant."""
    return (
        Operation.objects.filter(status=Operation.Status.FAILED, finished_at__gte=since)
        .select_related("tenant")
        .order_by("-finished_at")
    )


def operations_unfinished_before(cutoff: datetime) -> QuerySet[Operation]:
    """Operations still queued or running that were created before `cutoff`: the ones an
    operator should look at (the sweeper fails them once their deadline passes)."""
    return (
        Operation.objects.filter(
            status__in=[Operation.Status.QUEUED, Operation.Status.RUNNING], created_at__lt=cutoff
        )
        .select_related("tenant")
        .order_by("created_at")
    )
