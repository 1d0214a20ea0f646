"""Reads of tenant data. `tenant_scoped` is the one place where tenant-owned querysets are
filtered by tenant: every selector of a tenant-owned resource goes through it, so a foreign
resource is simply not found (404), never forbidden (which would confirm it exists)."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.db.models import QuerySet

from tenants.models import ApiToken, Membership, Role, Tenant

M = TypeVar("M", bound=models.Model)


def tenant_scoped(queryset: QuerySet[M], tenant: Tenant) -> QuerySet[M]:
    """`queryset` restricted to rows owned by `tenant`. Fails loudly for a model that has no
    `tenant` field, rather than returning every tenant's rows."""
    model: Any = queryset.model
    field_names = {field.name for field in model._meta.get_fields()}
    if "tenant" not in field_names:
        raise TypeError(f"{model.__name__} is not tenant-owned")
    return queryset.filter(tenant=tenant)


def membership_list(tenant: Tenant) -> QuerySet[Membership]:
    return tenant_scoped(Membership.objects.select_related("user"), tenant)


def token_list_for_user(
    tenant: Tenant, user_id: int, *, max_role: str | None = None
) -> QuerySet[ApiToken]:
    """The caller's own tokens in this tenant (a user never sees other people's tokens), and
    with `max_role` only those of that role or lower: a reader token given to monitoring must
    not list, nor revoke, its owner's admin tokens (review L1)."""
    tokens = tenant_scoped(ApiToken.objects.filter(user_id=user_id), tenant)
    if max_role is not None:
        allowed = [role for role in Role if Role.rank(role) <= Role.rank(max_role)]
        tokens = tokens.filter(role__in=allowed)
    return tokens


def tenant_list() -> QuerySet[Tenant]:
    """Operators only."""
    return Tenant.objects.all()
