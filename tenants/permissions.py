"""Who may call what: tenant roles for tenant endpoints, staff for operator endpoints."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from iaas.errors import PermissionDeniedError
from tenants.context import resolve_tenant_context
from tenants.models import ApiToken, Role
from tenants.operators import is_operator


class TenantRolePermission(BasePermission):
    """The caller acts in a tenant (see `resolve_tenant_context`) with at least the view's
    `read_role` for safe methods and `write_role` for the others (reader / member by
    default)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        context = resolve_tenant_context(request)
        if request.method in SAFE_METHODS:
            required = getattr(view, "read_role", Role.READER)
        else:
            required = getattr(view, "write_role", Role.MEMBER)
        if not context.allows(required):
            raise PermissionDeniedError(
                f"This needs the {required} role; you are {context.role} in this tenant.",
                details={"required_role": str(required), "your_role": str(context.role)},
            )
        return True


class IsOperator(BasePermission):
    """Operator accounts (`tenants.operators.is_operator`), by session or by an operator
    token."""

    message = "This endpoint is for operators."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if not is_operator(user):
            return False
        auth = request.auth
        return not (isinstance(auth, ApiToken) and not auth.is_operator_token)
