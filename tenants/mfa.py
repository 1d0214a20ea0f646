"""Second factor (TOTP, with one-time recovery codes): who must use one, and checking one.

Policy: an account is *bound* to MFA when it has a confirmed TOTP device, or when MFA is
required of it: operators (staff accounts), tenant admins, and every member of a tenant that
requires it (`Tenant.require_mfa`). A bound account

- signs in (API `auth/login`, the portal, `/admin/`) only with its second factor once enrolled:
  the auth backend (tenants.signin) refuses the password alone, so no session is created;
- while required but not yet enrolled, gets a session that can only enrol (the API answers
  everything else `403 mfa_required`; the admin and the portal let it in nowhere);
- gets new API tokens only from a session verified with its second factor, or from a token
  that was itself created that way (`ApiToken.second_factor`).

Devices are django-otp's: TOTP (RFC 6238, 30 s steps, 6 digits, throttled on failures) and a
static device holding the recovery codes, each usable once.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.models import ApiToken, Membership, Role

RECOVERY_DEVICE_NAME = "recovery codes"
TOTP_DEVICE_NAME = "authenticator app"


def mfa_required(user: Any) -> bool:
    """Whether this account must use a second factor (enrolled or not)."""
    if user is None or not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    memberships = Membership.objects.filter(user_id=user.pk)
    return (
        memberships.filter(role=Role.ADMIN).exists()
        or memberships.filter(tenant__require_mfa=True).exists()
    )


def mfa_enrolled(user: Any) -> bool:
    """Whether this account has a confirmed TOTP device."""
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists()


def mfa_bound(user: Any) -> bool:
    """Enrolled, or required to be: such an account needs its second factor everywhere."""
    return mfa_enrolled(user) or mfa_required(user)


def recovery_codes_left(user: Any) -> int:
    device = StaticDevice.objects.filter(user_id=user.pk, name=RECOVERY_DEVICE_NAME).first()
    return device.token_set.count() if device is not None else 0


def verify_second_factor(user: Any, code: str) -> Device | None:
    """The device that accepts `code` for `user` (a TOTP code, or one recovery code, which is
    used up), or None. TOTP devices throttle after failures (django-otp's exponential delay),
    so guessing is slow even before the sign-in lockout counts the failures."""
    code = code.strip().replace(" ", "")
    if not code or len(code) > 32:
        return None
    with transaction.atomic():
        totp = TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).select_for_update()
        for device in totp:
            if device.verify_token(code):
                return device
        recovery = StaticDevice.objects.filter(
            user_id=user.pk, name=RECOVERY_DEVICE_NAME, confirmed=True
        ).select_for_update()
        for device in recovery:
            if device.verify_token(code):
                return device
    return None


def session_verified(request: Any) -> bool:
    """Whether the request's session passed a second factor (OTPMiddleware's device)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    is_verified = getattr(user, "is_verified", None)
    if is_verified is not None:
        return bool(is_verified())
    # Without the middleware (a DRF request wrapping the Django one), read the session.
    session = getattr(request, "session", None)
    return session is not None and bool(session.get(DEVICE_ID_SESSION_KEY))


def may_mint_tokens(
    user: Any, *, session_passed_mfa: bool, creating_token: ApiToken | None
) -> bool:
    """Whether a new token may be created for `user` by this credential (module docstring)."""
    if not mfa_bound(user):
        return True
    if creating_token is not None:
        return creating_token.second_factor
    return session_passed_mfa
