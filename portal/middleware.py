"""The portal's two middlewares: its language, and its content security policy.

The API (`/api/`) and Django's admin keep their own behaviour: English, and the admin's
headers. Everything the `portal` app serves — the tenant portal and the operator console —
speaks the user's language and carries a strict CSP."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

# No inline script or style, no asset, font, frame or form target outside this server. The
# QR code of MFA enrolment is inline SVG markup, not an image, so `img-src` stays 'self'.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

_NOT_PORTAL = ("/api/", "/admin/", "/static/", "/healthz", "/readyz")


def is_portal_path(path: str) -> bool:
    return not path.startswith(_NOT_PORTAL)


def portal_language(request: HttpRequest) -> str:
    """The signed-in user's chosen language, else the language cookie (set by the chooser
    on the sign-in page), else French."""
    supported = {code for code, _ in settings.LANGUAGES}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        from portal.models import Preference

        chosen = Preference.objects.filter(user_id=user.pk).values_list("language", flat=True)
        language = chosen.first()
        if language in supported:
            return str(language)
    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    if cookie in supported:
        return cookie
    return str(settings.PORTAL_DEFAULT_LANGUAGE)


class PortalLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_portal_path(request.path):
            return self.get_response(request)
        language = portal_language(request)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        vary = response.headers.get("Vary")
        response.headers["Vary"] = f"{vary}, Cookie" if vary else "Cookie"
        return response


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if is_portal_path(request.path):
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
