"""API authentication: `Authorization: Bearer andr_…` tokens, and sessions for the portal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied

from tenants import tokens
from tenants.context import source_address
from tenants.mfa import mfa_bound, session_verified
from tenants.models import ApiToken, Membership, Tenant
from tenants.operators import is_operator

# last_used_at is refreshed at most this often, so reads do not each cost a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenRefused(AuthenticationFailed):
    """A bearer token was presented and refused. Carries what the audit log may record about
    it (never the secret)."""

    def __init__(self, message: str, code: str, token: ApiToken | None = None):
        super().__init__(message, code=code)
        self.token = token


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[AbstractBaseUser, ApiToken] | None:
        try:
            return self._authenticate(request)
        except TokenRefused as refused:
            # Kept on the request so the exception handler can audit which token was refused.
            request._andromede_token_refused = refused
            raise

    def _authenticate(self, request: Any) -> tuple[AbstractBaseUser, ApiToken] | None:
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, value = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return None
        parts = tokens.parse(value.strip())
        if parts is None:
            raise TokenRefused("The bearer token is malformed.", "invalid_token")
        token = (
            ApiToken.objects.select_related("user", "tenant").filter(key_id=parts.key_id).first()
        )
        if token is None or not tokens.matches(parts, token.secret_hash):
            raise TokenRefused("The bearer token is not valid.", "invalid_token")
        now = timezone.now()
        if token.revoked_at is not None:
            raise TokenRefused("This token has been revoked.", "token_revoked", token)
        if token.expires_at <= now:
            raise TokenRefused("This token has expired.", "token_expired", token)
        if not token.user.is_active:
            raise TokenRefused("This token's account is disabled.", "account_disabled", token)
        self._check_scope(token)
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(
                last_used_at=now, last_used_address=source_address(request)
            )
        return token.user, token

    @staticmethod
    def _check_scope(token: ApiToken) -> None:
        if token.tenant_id is None:
            if not is_operator(token.user):
                raise TokenRefused("This token has no tenant.", "invalid_token", token)
            return
        assert token.tenant is not None
        if token.tenant.status != Tenant.Status.ACTIVE:
            raise TokenRefused("This token's tenant is suspended.", "tenant_suspended", token)
        if not Membership.objects.filter(user_id=token.user_id, tenant_id=token.tenant_id).exists():
            raise TokenRefused(
                "This token's owner is no longer a member of its tenant.", "invalid_token", token
            )

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="andromede"'


class MfaSessionAuthentication(SessionAuthentication):
    """DRF's session authentication (with its CSRF check), plus the second-factor gate: a
    session of an account bound to MFA that has not passed its second factor may only reach
    the views marked `mfa_enrolment_view = True` (who am I, sign-out, MFA enrolment); anything
    else is `403 mfa_required`. Such a session exists only while MFA is required of an account
    that has not enrolled yet: an enrolled account gets no session without its code."""

    def authenticate(self, request: Any) -> tuple[AbstractBaseUser, None] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if getattr(view, "mfa_enrolment_view", False):
            return result
        if not session_verified(request._request) and mfa_bound(user):
            raise PermissionDenied(
                "Your account must sign in with a second factor: enrol one with "
                "POST /api/v1/auth/mfa/totp, then sign in again with its code.",
                code="mfa_required",
            )
        return result
