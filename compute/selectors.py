"""Tenant-scoped reads of compute resources, all through `tenants.selectors.tenant_scoped`."""

from __future__ import annotations

from django.db.models import QuerySet

from compute.models import KeyPair
from tenants.models import Tenant
from tenants.selectors import tenant_scoped


def keypair_list(tenant: Tenant) -> QuerySet[KeyPair]:
    return tenant_scoped(KeyPair.objects.all(), tenant)
