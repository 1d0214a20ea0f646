"""Signing in and out, choosing the language, and the landing redirect."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from portal.forms.auth import PortalSignInForm
from portal.models import Preference
from portal.tenancy import active_memberships, signed_in_gate
from tenants.operators import is_operator


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Operators go to the console; tenant users to their first tenant's dashboard."""
    refused = signed_in_gate(request)
    if refused is not None:
        return refused
    if is_operator(request.user):
        return redirect("portal:ops")
    memberships = active_memberships(request.user)
    if not memberships:
        return redirect("portal:account")
    return redirect("portal:dashboard", tenant=memberships[0].tenant.slug)


@require_GET
def switch(request: HttpRequest) -> HttpResponse:
    """The tenant switcher's target: to the chosen tenant's dashboard (a tenant that is not
    the user's is a 404 there, as everywhere)."""
    slug = request.GET.get("tenant", "")[:64]
    if not slug:
        return redirect("portal:home")
    return redirect("portal:dashboard", tenant=slug)


@require_POST
def language(request: HttpRequest) -> HttpResponse:
    """Choose the portal's language: kept on the account once signed in (every device then
    shows it), and in a cookie for the sign-in page."""
    code = request.POST.get("language", "")
    response: HttpResponse = HttpResponseRedirect(_safe_next(request, "/"))
    if code not in {c for c, _ in settings.LANGUAGES}:
        return response
    if request.user.is_authenticated:
        Preference.objects.update_or_create(user_id=request.user.pk, defaults={"language": code})
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        code,
        max_age=365 * 24 * 3600,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
    )
    return response


urlpatterns = [
    path("", home, name="home"),
    path("switch/", switch, name="switch"),
    path("language/", language, name="language"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="portal/login.html",
            authentication_form=PortalSignInForm,
            redirect_authenticated_user=False,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
