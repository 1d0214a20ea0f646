"""Password sign-in with a second factor, throttling and lockout, shared by every login path
(the API's session login, the portal and the operator admin) because it lives in the auth
backend.

Two realms: tenants sign in on the tenant path (API `auth/login`, the portal), operators on
theirs (`/admin/`, API `admin/auth/login`); an account is refused on the other realm's path,
and attempts are counted per realm, so an anonymous caller on the tenant path cannot lock an
operator out.

Lockout: after SIGNIN_MAX_FAILURES failed attempts for one username (in one realm) within
SIGNIN_WINDOW, or SIGNIN_MAX_FAILURES_PER_ADDRESS failures from one source address (any
username), further attempts are refused without checking the password until SIGNIN_LOCKOUT
has passed since the last failure. A success resets its own username's count only: an
attacker's successful sign-in to its own account never resets the per-address count (password
spraying stays bounded). Attempts are rows, so the lockout holds across processes.

Second factor (tenants.mfa): an enrolled account's password alone is not a sign-in; its TOTP
or recovery code must come with it, and a wrong code counts as a failure.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.dispatch import receiver
from django.utils import timezone

from iaas.audit import Actor, audit_record
from tenants import auth_noise
from tenants.context import source_address
from tenants.mfa import mfa_enrolled, verify_second_factor
from tenants.models import SignInAttempt

Realm = SignInAttempt.Realm
# Where the backend leaves the reason of a refused sign-in for the view that called it.
REFUSAL_ATTRIBUTE = "_andromede_signin_refusal"


def _key(username: str) -> str:
    return username.strip().lower()[:150]


def _lock_remaining(
    failures: QuerySet[SignInAttempt], limit: int, now: datetime
) -> timedelta | None:
    recent = list(failures.order_by("-created_at").values_list("created_at", flat=True)[:limit])
    if len(recent) < limit:
        return None
    newest, oldest = recent[0], recent[-1]
    if newest - oldest > settings.SIGNIN_WINDOW:
        return None
    unlock_at = newest + settings.SIGNIN_LOCKOUT
    return unlock_at - now if unlock_at > now else None


def _recent(attempts: QuerySet[SignInAttempt]) -> QuerySet[SignInAttempt]:
    horizon = timezone.now() - settings.SIGNIN_WINDOW - settings.SIGNIN_LOCKOUT
    return attempts.filter(created_at__gte=horizon)


def _username_failures(username: str, realm: str) -> QuerySet[SignInAttempt]:
    """This username's failures in this realm since its own last success."""
    attempts = SignInAttempt.objects.filter(username=_key(username), realm=realm)
    last_success = (
        attempts.filter(succeeded=True).order_by("-created_at").values_list("created_at", flat=True)
    ).first()
    failures = attempts.filter(succeeded=False)
    if last_success is not None:
        failures = failures.filter(created_at__gt=last_success)
    return _recent(failures)


def _address_failures(address: str) -> QuerySet[SignInAttempt]:
    """Every failure from this address, whatever succeeded from it meanwhile."""
    return _recent(SignInAttempt.objects.filter(source_address=address, succeeded=False))


def lockout_seconds(username: str, address: str | None, realm: str = Realm.TENANT) -> int | None:
    """Seconds until this username (or address) may try again, or None if not locked."""
    now = timezone.now()
    remaining = [
        _lock_remaining(_username_failures(username, realm), settings.SIGNIN_MAX_FAILURES, now)
    ]
    if address:
        remaining.append(
            _lock_remaining(
                _address_failures(address), settings.SIGNIN_MAX_FAILURES_PER_ADDRESS, now
            )
        )
    longest = max((r for r in remaining if r is not None), default=None)
    return math.ceil(longest.total_seconds()) if longest is not None else None


def record_attempt(
    username: str, address: str | None, succeeded: bool, realm: str = Realm.TENANT
) -> None:
    SignInAttempt.objects.create(
        username=_key(username), source_address=address, succeeded=succeeded, realm=realm
    )


def refusal_reason(request: Any) -> str | None:
    """Why the backend refused the last sign-in of this request (None: not refused by it)."""
    return getattr(request, REFUSAL_ATTRIBUTE, None)


def _refuse(request: Any, username: str, address: str | None, code: str) -> None:
    if request is not None:
        setattr(request, REFUSAL_ATTRIBUTE, code)
    audit_refused_signin(username, address, code)


def audit_refused_signin(username: str, address: str | None, code: str) -> None:
    """Record a refused sign-in in the audit log, whichever login page it came through (the
    password is never recorded). Attempts refused because of a lockout are counted and
    summarised instead (tenants.auth_noise): once locked, the attempts are noise, and each
    would otherwise be an audit event."""
    if code == "locked_out":
        auth_noise.note(auth_noise.Kind.LOCKED_OUT_SIGNIN, address)
        return
    actor = Actor(label=username[:150], credential="password", source_address=address)
    audit_record(actor=actor, action="auth.login", outcome="refused", details={"code": code})


class LockoutModelBackend(ModelBackend):
    """Django's ModelBackend behind the lockout, the realm check and the second factor.

    `authenticate(request, username=, password=, otp_token=None, realm="tenant")`. A
    locked-out attempt raises PermissionDenied, which Django's `authenticate()` turns into a
    failed login without trying other backends. A user signed in with a second factor carries
    `otp_device`, which django-otp's `user_logged_in` handler stores in the session (the
    session is then verified)."""

    def authenticate(
        self,
        request: Any,
        username: str | None = None,
        password: str | None = None,
        otp_token: str | None = None,
        realm: str = Realm.TENANT,
        **kwargs: Any,
    ) -> Any:
        if username is None or password is None:
            return None
        address = source_address(request) if request is not None else None
        if lockout_seconds(username, address, realm) is not None:
            _refuse(request, username, address, "locked_out")
            raise PermissionDenied("locked out")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and bool(user.is_staff) != (realm == Realm.OPERATOR):
            user = None  # an operator never signs in on the tenant path, nor a tenant user here
        if user is None:
            record_attempt(username, address, succeeded=False, realm=realm)
            _refuse(request, username, address, "invalid_credentials")
            return None
        if mfa_enrolled(user):
            if not otp_token:
                # Not counted: the caller is asked for its code and tries again with it.
                _refuse(request, username, address, "mfa_token_required")
                return None
            device = verify_second_factor(user, otp_token)
            if device is None:
                record_attempt(username, address, succeeded=False, realm=realm)
                _refuse(request, username, address, "invalid_mfa_token")
                return None
            user.otp_device = device  # type: ignore[attr-defined]  # django-otp's marker
        record_attempt(username, address, succeeded=True, realm=realm)
        return user


@receiver(user_logged_in)
def audit_signin(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Every successful sign-in (API, portal, admin) is an audit event."""
    address = source_address(request) if request is not None else None
    second_factor = getattr(user, "otp_device", None) is not None
    actor = Actor(
        user_id=user.pk,
        label=user.get_username(),
        credential="password+otp" if second_factor else "password",
        source_address=address,
    )
    audit_record(actor=actor, action="auth.login", details={"second_factor": second_factor})
