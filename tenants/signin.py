"""Password sign-in with throttling and lockout, shared by every login path (the API's
session login, the portal and the operator admin) because it lives in the auth backend.

After SIGNIN_MAX_FAILURES failed attempts for one username within SIGNIN_WINDOW (or
SIGNIN_MAX_FAILURES_PER_ADDRESS from one source address), further attempts are refused
without checking the password until SIGNIN_LOCKOUT has passed since the last failure. A
success resets the count. Attempts are rows, so the lockout holds across processes.
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
from tenants.context import source_address
from tenants.models import SignInAttempt


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


def _failures_since_success(**filters: Any) -> QuerySet[SignInAttempt]:
    attempts = SignInAttempt.objects.filter(**filters)
    last_success = (
        attempts.filter(succeeded=True).order_by("-created_at").values_list("created_at", flat=True)
    ).first()
    failures = attempts.filter(succeeded=False)
    if last_success is not None:
        failures = failures.filter(created_at__gt=last_success)
    horizon = timezone.now() - settings.SIGNIN_WINDOW - settings.SIGNIN_LOCKOUT
    return failures.filter(created_at__gte=horizon)


def lockout_seconds(username: str, address: str | None) -> int | None:
    """Seconds until this username (or address) may try again, or None if not locked."""
    now = timezone.now()
    remaining = [
        _lock_remaining(
            _failures_since_success(username=_key(username)), settings.SIGNIN_MAX_FAILURES, now
        )
    ]
    if address:
        remaining.append(
            _lock_remaining(
                _failures_since_success(source_address=address),
                settings.SIGNIN_MAX_FAILURES_PER_ADDRESS,
                now,
            )
        )
    longest = max((r for r in remaining if r is not None), default=None)
    return math.ceil(longest.total_seconds()) if longest is not None else None


def record_attempt(username: str, address: str | None, succeeded: bool) -> None:
    SignInAttempt.objects.create(
        username=_key(username), source_address=address, succeeded=succeeded
    )


class LockoutModelBackend(ModelBackend):
    """Django's ModelBackend behind the lockout. A locked-out attempt raises PermissionDenied,
    which Django's `authenticate()` turns into a failed login without trying other backends."""

    def authenticate(
        self,
        request: Any,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None or password is None:
            return None
        address = source_address(request) if request is not None else None
        if lockout_seconds(username, address) is not None:
            audit_refused_signin(username, address, "locked_out")
            raise PermissionDenied("locked out")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        record_attempt(username, address, succeeded=user is not None)
        if user is None:
            audit_refused_signin(username, address, "invalid_credentials")
        return user


@receiver(user_logged_in)
def audit_signin(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Every successful sign-in (API, portal, admin) is an audit event."""
    address = source_address(request) if request is not None else None
    actor = Actor(
        user_id=user.pk, label=user.get_username(), credential="password", source_address=address
    )
    audit_record(actor=actor, action="auth.login")


def audit_refused_signin(username: str, address: str | None, code: str) -> None:
    """Record a refused sign-in in the audit log, whichever login page it came through (the
    password is never recorded)."""
    actor = Actor(label=username[:150], credential="password", source_address=address)
    audit_record(actor=actor, action="auth.login", outcome="refused", details={"code": code})
