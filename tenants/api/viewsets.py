"""Base classes for tenant-scoped API views: every one resolves the caller's tenant and role
the same way, filters through `tenant_scoped`, and honours Idempotency-Key on create."""

from __future__ import annotations

from typing import Any

from rest_framework import viewsets

from iaas.audit import Actor
from tenants.context import TenantContext, actor_from_request, resolve_tenant_context
from tenants.models import Role
from tenants.permissions import IsOperator, TenantRolePermission


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Subclasses set `audit_resource`, and `read_role`/`write_role` when the defaults (reader
    reads, member writes) do not fit, and implement `get_queryset` with a selector. Creating
    subclasses add `iaas.api.idempotency.IdempotentCreateMixin` first and implement
    `create_resource`."""

    permission_classes = [TenantRolePermission]
    read_role = Role.READER
    write_role = Role.MEMBER
    audit_resource = ""
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    @property
    def tenant_context(self) -> TenantContext:
        return resolve_tenant_context(self.request)

    @property
    def actor(self) -> Actor:
        return actor_from_request(self.request)

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        context["view"] = self
        return context


class OperatorViewSet(viewsets.GenericViewSet):
    permission_classes = [IsOperator]
    audit_resource = ""
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    @property
    def actor(self) -> Actor:
        return actor_from_request(self.request)
