"""Who is calling, in which tenant, with which role: resolved once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from iaas.audit import Actor
from iaas.errors import NotFoundError, PermissionDeniedError
from tenants.models import ApiToken, Membership, Role, Tenant

TENANT_HEADER = "X-Tenant"


@dataclass(frozen=True)
class TenantContext:
    """The tenant a request acts in and the caller's effective role there (the lower of the
    membership's role and, for a token, the token's role)."""

    tenant: Tenant
    role: Role
    membership: Membership

    def allows(self, required: Role) -> bool:
        return Role.rank(self.role) >= Role.rank(required)


def source_address(request: HttpRequest) -> str | None:
    # Behind a reverse proxy, list it in ANDROMEDE_TRUSTED_PROXIES: iaas.proxy then sets
    # REMOTE_ADDR from its X-Forwarded-For; from anyone else that header is never trusted.
    return request.META.get("REMOTE_ADDR") or None


def actor_from_request(request: Any) -> Actor:
    user = getattr(request, "user", None)
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiToken):
        credential = f"token:{auth.key_id}"
    elif user is not None and user.is_authenticated:
        credential = "session"
    else:
        credential = ""
    return Actor(
        user_id=user.pk if user is not None and user.is_authenticated else None,
        label=user.get_username() if user is not None and user.is_authenticated else "",
        credential=credential,
        source_address=source_address(request),
    )


def resolve_tenant_context(request: Any) -> TenantContext:
    """The tenant context of an authenticated request.

    A tenant token names its tenant. A session picks one with the X-Tenant header (slug or id),
    or uses the user's only membership. Operators (staff accounts) have no tenant context.
    Raises PermissionDeniedError when there is no tenant to act in, NotFoundError when the
    named tenant is not one of the caller's.
    """
    cached = getattr(request, "_tenant_context", None)
    if cached is not None:
        return cached
    user = request.user
    auth = request.auth
    if isinstance(auth, ApiToken):
        if auth.tenant_id is None:
            raise PermissionDeniedError(
                "Operator tokens cannot act in a tenant; use the /api/v1/admin/ endpoints.",
                code="operator_token",
            )
        membership = (
            Membership.objects.select_related("tenant").filter(user=user, tenant_id=auth.tenant_id)
        ).first()
        if membership is None:  # checked at authentication; kept for defence in depth
            raise PermissionDeniedError("This token's owner is no longer a member of its tenant.")
        role = Role.lowest(membership.role, auth.role)
    else:
        memberships = Membership.objects.select_related("tenant").filter(user=user)
        wanted = request.headers.get(TENANT_HEADER, "").strip()
        if wanted:
            membership = _pick(memberships, wanted)
        else:
            candidates = list(memberships[:2])
            if len(candidates) != 1:
                raise PermissionDeniedError(
                    "Choose a tenant with the X-Tenant header (slug or id)."
                    if candidates
                    else "You are not a member of any tenant.",
                    code="tenant_required" if candidates else "no_tenant",
                )
            membership = candidates[0]
        role = Role(membership.role)
    if membership.tenant.status != Tenant.Status.ACTIVE:
        raise PermissionDeniedError("This tenant is suspended.", code="tenant_suspended")
    context = TenantContext(tenant=membership.tenant, role=role, membership=membership)
    request._tenant_context = context
    return context


def _pick(memberships: Any, wanted: str) -> Membership:
    import uuid

    tenant_filter: dict[str, object]
    try:
        tenant_filter = {"tenant_id": uuid.UUID(wanted)}
    except ValueError:
        tenant_filter = {"tenant__slug": wanted}
    membership = memberships.filter(**tenant_filter).first()
    if membership is None:
        raise NotFoundError("No such tenant.", code="tenant_not_found")
    return membership
