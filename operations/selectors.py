"""Tenant-scoped reads of operations, through `tenants.selectors.tenant_scoped`."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from operations.models import Operation
from tenants.models import Tenant
from tenants.selectors import tenant_scoped


def operation_list(tenant: Tenant) -> QuerySet[Operation]:
    return tenant_scoped(Operation.objects.all(), tenant)


def operation_history(tenant: Tenant, target_id: uuid.UUID) -> QuerySet[Operation]:
    """The operations of one of the tenant's resources, oldest first."""
    return operation_list(tenant).filter(target_id=target_id).order_by("created_at")
