"""The signed-in user's own pages: the account (language, tenants, second factor) and the
second factor's enrolment, recovery codes and removal — the API's rules (tenants.mfa): the
secret and the codes are shown once to this session only; new codes and removal need a
session that passed the second factor."""

from __future__ import annotations

from typing import Any

import django_otp
import segno
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from iaas.errors import DomainError
from portal.errors import message_for
from portal.forms.account import OtpCodeForm
from portal.tenancy import active_memberships, signed_in_gate
from tenants import mfa_enrolment
from tenants.context import actor_from_request
from tenants.mfa import (
    mfa_enrolled,
    mfa_required,
    recovery_codes_left,
    session_verified,
)


def _signed_in(request: HttpRequest) -> HttpResponse | None:
    if not request.user.is_authenticated:
        return signed_in_gate(request)
    return None


def _mfa_status(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    return {
        "required": mfa_required(user),
        "enrolled": mfa_enrolled(user),
        "verified": session_verified(request),
        "codes_left": recovery_codes_left(user),
    }


def _qr_svg(uri: str) -> str:
    """The otpauth:// URI as inline SVG markup (no image request, nothing for the CSP to
    allow), with a title for screen readers."""
    qr = segno.make(uri, error="m")
    return str(qr.svg_inline(scale=4, border=2, title=_("QR code to scan with your app")))


@require_http_methods(["GET"])
def account(request: HttpRequest) -> HttpResponse:
    refused = signed_in_gate(request)
    if refused is not None:
        return refused
    return render(
        request,
        "portal/account/account.html",
        {"mfa": _mfa_status(request), "memberships": active_memberships(request.user)},
    )


@require_http_methods(["GET", "POST"])
def mfa(request: HttpRequest) -> HttpResponse:
    """Enrolment: GET shows the status (and the pending enrolment's QR code again); POST
    begins an enrolment. Open to an enrol-only session (MFA required, not enrolled)."""
    refused = _signed_in(request)
    if refused is not None:
        return refused
    user = request.user
    if request.method == "POST":
        try:
            mfa_enrolment.totp_begin(actor=actor_from_request(request), user=user)
        except DomainError as error:
            messages.error(request, message_for(error))
        return redirect("portal:mfa")
    pending = None if mfa_enrolled(user) else mfa_enrolment.totp_pending(user)
    context: dict[str, Any] = {"mfa": _mfa_status(request), "form": OtpCodeForm()}
    if pending is not None:
        context["pending"] = {
            "secret": pending.secret,
            "qr": mark_safe(_qr_svg(pending.uri)),  # noqa: S308 - segno's own SVG markup
        }
    return render(request, "portal/account/mfa.html", context)


@require_POST
def mfa_confirm(request: HttpRequest) -> HttpResponse:
    refused = _signed_in(request)
    if refused is not None:
        return refused
    form = OtpCodeForm(request.POST)
    if form.is_valid():
        try:
            device, codes = mfa_enrolment.totp_confirm(
                actor=actor_from_request(request),
                user=request.user,
                code=form.cleaned_data["code"],
            )
        except DomainError as error:
            form.add_error("code", message_for(error))
        else:
            # A new session key for the now-verified session (as Django does at sign-in).
            request.session.cycle_key()
            django_otp.login(request, device)
            return render(
                request, "portal/account/recovery_codes.html", {"codes": codes, "new": True}
            )
    pending = mfa_enrolment.totp_pending(request.user)
    context: dict[str, Any] = {"mfa": _mfa_status(request), "form": form}
    if pending is not None:
        context["pending"] = {
            "secret": pending.secret,
            "qr": mark_safe(_qr_svg(pending.uri)),  # noqa: S308 - segno's own SVG markup
        }
    return render(request, "portal/account/mfa.html", context, status=400)


def _verified_or_refused(request: HttpRequest) -> HttpResponse | None:
    refused = _signed_in(request)
    if refused is not None:
        return refused
    if not session_verified(request):
        messages.error(request, _("Sign in again with your second factor before changing it."))
        return redirect("portal:mfa")
    return None


@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    refused = _verified_or_refused(request)
    if refused is not None:
        return refused
    try:
        codes = mfa_enrolment.recovery_codes_regenerate(
            actor=actor_from_request(request), user=request.user
        )
    except DomainError as error:
        messages.error(request, message_for(error))
        return redirect("portal:mfa")
    return render(request, "portal/account/recovery_codes.html", {"codes": codes, "new": False})


@require_http_methods(["GET", "POST"])
def mfa_reset(request: HttpRequest) -> HttpResponse:
    """GET asks for confirmation; POST removes the second factor. The account then signs in
    with its password alone, into an enrol-only session if MFA is required of it."""
    refused = _verified_or_refused(request)
    if refused is not None:
        return refused
    if request.method == "GET":
        return render(request, "portal/account/mfa_reset.html")
    mfa_enrolment.mfa_reset(actor=actor_from_request(request), user=request.user, by_operator=False)
    messages.success(request, _("Your second factor was removed."))
    return redirect("portal:mfa")


urlpatterns = [
    path("account/", account, name="account"),
    path("account/mfa/", mfa, name="mfa"),
    path("account/mfa/confirm/", mfa_confirm, name="mfa-confirm"),
    path("account/mfa/recovery-codes/", recovery_codes, name="mfa-recovery-codes"),
    path("account/mfa/reset/", mfa_reset, name="mfa-reset"),
]
