"""The caller's own API tokens in this tenant, as the API has them (tenants/api/tokens.py):
any role manages its own tokens (`TokenViewSet.write_role` is reader); a new token's role is
at most the caller's; its secret is shown once, on the answer to the create, and never
stored; an account bound to a second factor mints tokens only from a session that passed it
(`tenants.mfa.may_mint_tokens`)."""

from __future__ import annotations

from typing import cast
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from iaas.errors import DomainError
from portal.errors import message_for
from portal.forms.people import TokenCreateForm
from portal.tenancy import TenantPage, tenant_page
from tenants import selectors, services
from tenants.mfa import may_mint_tokens, session_verified
from tenants.models import ApiToken, Role


def _tokens(page: TenantPage, request: HttpRequest) -> list[ApiToken]:
    return list(
        selectors.token_list_for_user(page.tenant, request.user.pk or 0).order_by(
            "-created_at", "id"
        )
    )


def _token_status(token: ApiToken) -> str:
    """As the API's TokenSerializer.get_status."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= timezone.now():
        return "expired"
    return "active"


def _may_mint(request: HttpRequest) -> bool:
    return may_mint_tokens(
        request.user, session_passed_mfa=session_verified(request), creating_token=None
    )


@require_GET
@tenant_page(write_role=Role.READER)
def token_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    tokens = [{"token": t, "status": _token_status(t)} for t in _tokens(page, request)]
    return render(
        request,
        "portal/people/tokens.html",
        {"tokens": tokens, "may_mint": _may_mint(request)},
    )


@require_http_methods(["GET", "POST"])
@tenant_page(write_role=Role.READER)
def token_create(request: HttpRequest, page: TenantPage) -> HttpResponse:
    form = TokenCreateForm(request.POST or None, caller_role=page.role)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                token, secret = services.token_create(
                    actor=page.actor,
                    user=cast(AbstractBaseUser, request.user),  # signed in: tenant_page
                    tenant=page.tenant,
                    name=data["name"],
                    role=data["role"],
                    expires_at=data["expires_at"],
                    session_passed_mfa=session_verified(request),
                )
            except DomainError as error:
                form.add_error(None, message_for(error))
            else:
                # The only page that ever shows the secret: the answer to this POST, never
                # cached, never reachable again.
                response = render(
                    request,
                    "portal/people/token_created.html",
                    {"token": token, "secret": secret},
                    status=201,
                )
                add_never_cache_headers(response)
                return response
        status = 400
    return render(
        request,
        "portal/people/token_create.html",
        {"form": form, "may_mint": _may_mint(request)},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@tenant_page(write_role=Role.READER)
def token_revoke(request: HttpRequest, page: TenantPage, token_id: UUID) -> HttpResponse:
    tokens = selectors.token_list_for_user(page.tenant, request.user.pk or 0)
    token = get_object_or_404(tokens, pk=token_id)
    if request.method == "GET":
        return render(
            request,
            "portal/people/token_revoke.html",
            {"token": token, "status": _token_status(token)},
        )
    try:
        services.token_revoke(actor=page.actor, token=token)
    except DomainError as error:
        messages.error(request, message_for(error))
    else:
        messages.success(request, _("The token “%(name)s” is revoked.") % {"name": token.name})
    return redirect("portal:tokens", tenant=page.tenant.slug)


urlpatterns = [
    path("tokens/", token_list, name="tokens"),
    path("tokens/new/", token_create, name="token-create"),
    path("tokens/<uuid:token_id>/revoke/", token_revoke, name="token-revoke"),
]
