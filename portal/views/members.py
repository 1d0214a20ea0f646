"""Members and invitations, as the API has them (tenants/api/members.py, invitations.py).

Every role lists the members; only admins invite, change a role or remove a member
(`MembershipViewSet.write_role`). An invitation names a username and becomes a membership
only when the account of that name accepts it, from its own session: the invitee's side is
under /account/invitations/ (`InvitationViewSet`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from iaas.errors import DomainError
from portal.errors import message_for
from portal.forms.people import InvitationForm, MemberRoleForm, role_choices
from portal.labels import role_label
from portal.tenancy import TenantPage, signed_in_gate, tenant_page
from tenants import selectors, services
from tenants.context import actor_from_request
from tenants.models import Invitation, Membership, Role


def _member(page: TenantPage, member_id: int) -> Membership:
    return get_object_or_404(selectors.membership_list(page.tenant), pk=member_id)


def _pending_invitations(page: TenantPage) -> QuerySet[Invitation]:
    """The tenant's invitations still waiting for an answer (admins only: they made them,
    and the audit log already shows them each one)."""
    return selectors.tenant_scoped(Invitation.objects.all(), page.tenant).filter(
        status=Invitation.Status.PENDING, expires_at__gt=timezone.now()
    )


def _admin_reads_only(page: TenantPage) -> None:
    if not page.is_admin:
        raise PermissionDenied(
            _("This needs the %(required)s role; you are %(role)s in this tenant.")
            % {"required": role_label(Role.ADMIN), "role": role_label(page.role)}
        )


@require_GET
@tenant_page
def member_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    members = list(selectors.membership_list(page.tenant).order_by("user__username"))
    context: dict[str, Any] = {
        "members": members,
        "roles": role_choices(),
    }
    if page.is_admin:
        context["invitations"] = list(_pending_invitations(page))
    return render(request, "portal/people/members.html", context)


@require_POST
@tenant_page(write_role=Role.ADMIN)
def member_role(request: HttpRequest, page: TenantPage, member_id: int) -> HttpResponse:
    membership = _member(page, member_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the roles offered."))
        return redirect("portal:members", tenant=page.tenant.slug)
    username = membership.user.get_username()
    try:
        services.membership_set_role(
            actor=page.actor, membership=membership, role=form.cleaned_data["role"]
        )
    except DomainError as error:
        messages.error(request, message_for(error))
    else:
        messages.success(
            request,
            _("%(username)s is now %(role)s.")
            % {"username": username, "role": role_label(form.cleaned_data["role"])},
        )
    return redirect("portal:members", tenant=page.tenant.slug)


@require_http_methods(["GET", "POST"])
@tenant_page(write_role=Role.ADMIN)
def member_delete(request: HttpRequest, page: TenantPage, member_id: int) -> HttpResponse:
    """GET: what removing the member takes away (their access, their tokens here); POST: the
    removal. A reader or member sees the page only as a refusal (403), as the API answers."""
    _admin_reads_only(page)
    membership = _member(page, member_id)
    context = {"membership": membership, "is_self": membership.user_id == request.user.pk}
    if request.method == "GET":
        return render(request, "portal/people/member_delete.html", context)
    username = membership.user.get_username()
    try:
        services.membership_remove(actor=page.actor, membership=membership)
    except DomainError as error:
        context["error"] = message_for(error)
        return render(request, "portal/people/member_delete.html", context, status=409)
    messages.success(request, _("%(username)s is no longer a member.") % {"username": username})
    if context["is_self"]:
        return redirect("portal:account")
    return redirect("portal:members", tenant=page.tenant.slug)


@require_http_methods(["GET", "POST"])
@tenant_page(write_role=Role.ADMIN)
def invitations(request: HttpRequest, page: TenantPage) -> HttpResponse:
    """The pending invitations and the invite form (admins, as the API's `POST /members`)."""
    _admin_reads_only(page)
    form = InvitationForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                invitation = services.invitation_create(
                    actor=page.actor, tenant=page.tenant, **form.cleaned_data
                )
            except DomainError as error:
                form.add_error(None, message_for(error))
            else:
                messages.success(
                    request,
                    _(
                        "%(username)s is invited as %(role)s until %(date)s. They become a "
                        "member once they accept, from their own account."
                    )
                    % {
                        "username": invitation.username,
                        "role": role_label(invitation.role),
                        "date": date_format(
                            timezone.localtime(invitation.expires_at), "SHORT_DATE_FORMAT"
                        ),
                    },
                )
                return redirect("portal:invitations", tenant=page.tenant.slug)
        status = 400
    context = {"form": form, "invitations": list(_pending_invitations(page))}
    return render(request, "portal/people/invitations.html", context, status=status)


# ---- The invitee's side: /account/invitations/ ----------------------------------------------


def _my_invitations(request: HttpRequest) -> QuerySet[Invitation]:
    """As the API's `GET /invitations`: pending, unexpired, addressed to this account."""
    return Invitation.objects.select_related("tenant").filter(
        username=request.user.get_username(),
        status=Invitation.Status.PENDING,
        expires_at__gt=timezone.now(),
    )


@require_GET
def account_invitations(request: HttpRequest) -> HttpResponse:
    refused = signed_in_gate(request)
    if refused is not None:
        return refused
    pending = list(_my_invitations(request).order_by("-created_at"))
    context = {
        "invitations": pending,
        "offers_admin": any(i.role == Role.ADMIN for i in pending),
    }
    return render(request, "portal/people/account_invitations.html", context)


@require_POST
def account_invitation_accept(request: HttpRequest, invitation_id: UUID) -> HttpResponse:
    refused = signed_in_gate(request)
    if refused is not None:
        return refused
    get_object_or_404(_my_invitations(request), pk=invitation_id)  # another's: 404, as the API
    try:
        membership = services.invitation_accept(
            actor=actor_from_request(request), user=request.user, invitation_id=invitation_id
        )
    except DomainError as error:
        messages.error(request, message_for(error))
        return redirect("portal:account-invitations")
    messages.success(
        request,
        _("You are now %(role)s of %(tenant)s.")
        % {"role": role_label(membership.role), "tenant": membership.tenant.name},
    )
    return redirect("portal:dashboard", tenant=membership.tenant.slug)


@require_POST
def account_invitation_decline(request: HttpRequest, invitation_id: UUID) -> HttpResponse:
    refused = signed_in_gate(request)
    if refused is not None:
        return refused
    get_object_or_404(_my_invitations(request), pk=invitation_id)
    try:
        services.invitation_decline(
            actor=actor_from_request(request), user=request.user, invitation_id=invitation_id
        )
    except DomainError as error:
        messages.error(request, message_for(error))
    else:
        messages.success(request, _("You declined the invitation."))
    return redirect("portal:account-invitations")


tenant_urlpatterns = [
    path("members/", member_list, name="members"),
    path("members/invitations/", invitations, name="invitations"),
    path("members/<int:member_id>/role/", member_role, name="member-role"),
    path("members/<int:member_id>/delete/", member_delete, name="member-delete"),
]

account_urlpatterns = [
    path("account/invitations/", account_invitations, name="account-invitations"),
    path(
        "account/invitations/<uuid:invitation_id>/accept/",
        account_invitation_accept,
        name="account-invitation-accept",
    ),
    path(
        "account/invitations/<uuid:invitation_id>/decline/",
        account_invitation_decline,
        name="account-invitation-decline",
    ),
]
