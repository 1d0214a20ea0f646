"""Who may see and do what in the portal: the same rules as the API (DESIGN §9).

Every tenant page is under `/t/<tenant>/` and goes through `tenant_page`, which

- asks for a signed-in session, and for an account bound to MFA a session that passed its
  second factor (an account that must enrol is sent to the enrolment page);
- finds the tenant among the user's own *active* memberships, so another tenant (or a
  suspended one) is a 404, never a 403 that would confirm it exists;
- lets readers read and asks `write_role` (member by default) of every POST, as the API's
  TenantRolePermission does: a reader who posts anyway gets a 403 and nothing changes.

Objects are then read through the owning app's tenant-scoped selectors, so a foreign object
is a 404 as well. Operators (`tenants.operators.is_operator`) have no tenant pages: theirs
are under /ops/ (`operator_page`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from iaas.audit import Actor, audit_record
from iaas.models import AuditEvent
from portal.labels import role_label
from tenants.context import actor_from_request
from tenants.mfa import mfa_bound, session_verified
from tenants.models import Membership, Role, Tenant
from tenants.operators import is_operator

View = Callable[..., HttpResponse]


@dataclass(frozen=True)
class TenantPage:
    """The tenant a portal page acts in, the caller's role there and their other tenants."""

    tenant: Tenant
    role: Role
    memberships: list[Membership]
    actor: Actor

    def allows(self, required: str) -> bool:
        return Role.rank(self.role) >= Role.rank(required)

    @property
    def can_write(self) -> bool:
        return self.allows(Role.MEMBER)

    @property
    def is_admin(self) -> bool:
        return self.allows(Role.ADMIN)


def active_memberships(user: Any) -> list[Membership]:
    """The user's memberships in active tenants (a suspended tenant is not shown, as the API
    refuses its tokens: review L8), oldest first."""
    return list(
        Membership.objects.filter(user_id=user.pk, tenant__status=Tenant.Status.ACTIVE)
        .select_related("tenant")
        .order_by("created_at", "id")
    )


def signed_in_gate(request: HttpRequest) -> HttpResponse | None:
    """None when the request may see signed-in pages; otherwise the answer to send: the
    sign-in page, or MFA enrolment for an account that must enrol first."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if mfa_bound(request.user) and not session_verified(request):
        return redirect("portal:mfa")
    return None


def _audit_refused_write(request: HttpRequest, page: TenantPage, required: str) -> None:
    """A write refused for its role leaves one refused event in the tenant, as the API's
    refused writes do (iaas.audit.refusals): who tried what, never the form's content."""
    match = request.resolver_match
    audit_record(
        actor=page.actor,
        action=f"portal.{match.url_name if match else 'page'}",
        tenant_id=page.tenant.pk,
        outcome=AuditEvent.Outcome.REFUSED,
        details={"status": 403, "code": "permission_denied", "required_role": str(required),
                 "your_role": str(page.role), "path": request.path[:200]},
    )  # fmt: skip


def tenant_page(view: View | None = None, *, write_role: str = Role.MEMBER) -> Any:
    """Decorator of a tenant page `view(request, page, **kwargs)` mounted under
    `/t/<tenant>/` (see the module docstring)."""

    def decorate(inner: View) -> View:
        @wraps(inner)
        def wrapped(request: HttpRequest, tenant: str, **kwargs: Any) -> HttpResponse:
            refused = signed_in_gate(request)
            if refused is not None:
                return refused
            memberships = active_memberships(request.user)
            membership = next((m for m in memberships if m.tenant.slug == tenant), None)
            if membership is None:
                raise Http404(_("No such tenant."))
            page = TenantPage(
                tenant=membership.tenant,
                role=Role(membership.role),
                memberships=memberships,
                actor=actor_from_request(request),
            )
            if request.method not in ("GET", "HEAD") and not page.allows(write_role):
                _audit_refused_write(request, page, write_role)
                raise PermissionDenied(
                    _("This needs the %(required)s role; you are %(role)s in this tenant.")
                    % {"required": role_label(write_role), "role": role_label(page.role)}
                )
            request.portal_page = page  # type: ignore[attr-defined]
            return inner(request, page, **kwargs)

        return wrapped

    return decorate(view) if view is not None else decorate


def operator_page(view: View) -> View:
    """Decorator of an operator console page `view(request, **kwargs)` under /ops/: an
    operator account whose session passed its second factor (operators are always bound to
    MFA). Anyone else gets a 404: the console does not exist for them."""

    @wraps(view)
    def wrapped(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url=reverse("portal:ops-login"))
        refused = signed_in_gate(request)
        if refused is not None:
            return refused
        if not is_operator(request.user):
            raise Http404(_("No such page."))
        return view(request, **kwargs)

    return wrapped
