"""Tenant-scoped reads of compute resources, all through `tenants.selectors.tenant_scoped`."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from compute.models import Flavor, Image, Instance, KeyPair, Operation, ServerGroup
from tenants.models import Tenant
from tenants.selectors import tenant_scoped


def keypair_list(tenant: Tenant) -> QuerySet[KeyPair]:
    return tenant_scoped(KeyPair.objects.all(), tenant)


def server_group_list(tenant: Tenant) -> QuerySet[ServerGroup]:
    return tenant_scoped(ServerGroup.objects.all(), tenant)


def server_group_find(tenant: Tenant, ref: str) -> ServerGroup | None:
    """The tenant's server group by id or name (None if it has none such)."""
    groups = server_group_list(tenant)
    try:
        return groups.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        return groups.filter(name=ref).first()


def flavor_list(tenant: Tenant) -> QuerySet[Flavor]:
    """Flavors this tenant may use: public ones and private ones shared with it."""
    return (
        Flavor.objects.filter(disabled=False)
        .filter(Q(is_public=True) | Q(access=tenant))
        .distinct()
    )


def instance_list(tenant: Tenant) -> QuerySet[Instance]:
    """The tenant's instances, deleted ones excluded."""
    return (
        tenant_scoped(Instance.objects.all(), tenant)
        .exclude(status=Instance.Status.DELETED)
        .select_related("flavor", "keypair", "host__zone", "port")
    )


def operation_list(tenant: Tenant) -> QuerySet[Operation]:
    return tenant_scoped(Operation.objects.all(), tenant)


def image_list(tenant: Tenant) -> QuerySet[Image]:
    """The images this tenant sees: its own private ones and the public ones, not deleted."""
    visible = tenant_scoped(Image.objects.all(), tenant) | Image.objects.filter(
        visibility=Image.Visibility.PUBLIC
    )
    return visible.exclude(status=Image.Status.DELETED)


def image_list_all() -> QuerySet[Image]:
    """Operators only: every tenant's images and the public ones, not deleted."""
    return Image.objects.exclude(status=Image.Status.DELETED)
