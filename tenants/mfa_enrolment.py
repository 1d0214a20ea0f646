"""Enrolling, re-issuing recovery codes and resetting a second factor (policy in tenants.mfa).

Every change is an audit event written in the same transaction. The TOTP secret and the
recovery codes are returned once, to the account's own session, and never logged or stored in
clear anywhere else than django-otp's device rows (which the verifier needs).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from tenants.mfa import RECOVERY_DEVICE_NAME, TOTP_DEVICE_NAME

RECOVERY_CODE_COUNT = 10
ISSUER = "Andromède"


@dataclass(frozen=True)
class TotpEnrolment:
    """What an authenticator app needs: the base32 secret and the otpauth:// URI."""

    secret: str
    uri: str


def _base32_secret(device: TOTPDevice) -> str:
    return base64.b32encode(bytes.fromhex(device.key)).decode("ascii").rstrip("=")


def _uri(device: TOTPDevice, username: str) -> str:
    from urllib.parse import quote, urlencode

    params = urlencode(
        {"secret": _base32_secret(device), "issuer": ISSUER, "digits": device.digits}
    )
    return f"otpauth://totp/{quote(ISSUER)}:{quote(username)}?{params}"


def _audit(actor: Actor, user: Any, action: str, details: dict[str, Any] | None = None) -> None:
    audit_record(
        actor=actor,
        action=action,
        target_type="user",
        target_id=str(user.pk),
        target_label=user.get_username(),
        details=details or {},
    )


@transaction.atomic
def totp_begin(*, actor: Actor, user: Any) -> TotpEnrolment:
    """Start enrolment: a new, unconfirmed TOTP device (replacing any unconfirmed one).

    Refused with 409 `mfa_already_enrolled` when a confirmed device exists: reset it first
    (which needs the second factor, or an operator)."""
    if TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists():
        raise ConflictError(
            "A second factor is already enrolled; reset it before enrolling a new one.",
            code="mfa_already_enrolled",
        )
    TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).delete()
    device = TOTPDevice.objects.create(user_id=user.pk, name=TOTP_DEVICE_NAME, confirmed=False)
    _audit(actor, user, "mfa.enrol_begin")
    return TotpEnrolment(secret=_base32_secret(device), uri=_uri(device, user.get_username()))


def totp_pending(user: Any) -> TotpEnrolment | None:
    """The enrolment begun and not confirmed yet, to show again to the account's own session
    (the portal re-shows its QR code after a mistyped code); None when there is none."""
    device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).first()
    if device is None:
        return None
    return TotpEnrolment(secret=_base32_secret(device), uri=_uri(device, user.get_username()))


def _new_recovery_codes(user: Any) -> list[str]:
    StaticDevice.objects.filter(user_id=user.pk).delete()
    device = StaticDevice.objects.create(user_id=user.pk, name=RECOVERY_DEVICE_NAME)
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def totp_confirm(*, actor: Actor, user: Any, code: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the pending device with a code from the app; returns it and new recovery codes.

    400 `invalid_mfa_token` for a wrong code (the device stays pending, and its failure
    counter, which throttles guessing, is kept); 409 `mfa_not_pending` when there is nothing
    to confirm."""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update().filter(user_id=user.pk, confirmed=False).first()
        )
        if device is None:
            raise ConflictError(
                "No enrolment is pending; start one with POST /api/v1/auth/mfa/totp.",
                code="mfa_not_pending",
            )
        if device.verify_token(code.strip().replace(" ", "")):
            device.confirmed = True
            device.save()
            codes = _new_recovery_codes(user)
            _audit(actor, user, "mfa.enrol")
            return device, codes
    # Outside the transaction, so the throttling counter verify_token saved is not rolled back.
    raise InvalidRequest("That code is not valid for this enrolment.", code="invalid_mfa_token")


@transaction.atomic
def totp_enrol_for_bootstrap(*, actor: Actor, user: Any) -> tuple[TotpEnrolment, list[str]]:
    """Enrol a confirmed TOTP device and recovery codes at once, replacing any: only for
    `manage.py bootstrap_demo`, run on the control plane, which prints them once."""
    TOTPDevice.objects.filter(user_id=user.pk).delete()
    device = TOTPDevice.objects.create(user_id=user.pk, name=TOTP_DEVICE_NAME, confirmed=True)
    codes = _new_recovery_codes(user)
    _audit(actor, user, "mfa.enrol")
    enrolment = TotpEnrolment(secret=_base32_secret(device), uri=_uri(device, user.get_username()))
    return enrolment, codes


@transaction.atomic
def recovery_codes_regenerate(*, actor: Actor, user: Any) -> list[str]:
    """New recovery codes (the old ones stop working). Needs an enrolled account."""
    if not TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists():
        raise ConflictError("No second factor is enrolled.", code="mfa_not_enrolled")
    codes = _new_recovery_codes(user)
    _audit(actor, user, "mfa.recovery_codes")
    return codes


@transaction.atomic
def mfa_reset(*, actor: Actor, user: Any, by_operator: bool) -> bool:
    """Remove every device of `user` (TOTP and recovery codes); returns whether any existed.
    The account then signs in with its password alone, into an enrol-only session if MFA is
    required of it."""
    removed_totp, _ = TOTPDevice.objects.filter(user_id=user.pk).delete()
    removed_static, _ = StaticDevice.objects.filter(user_id=user.pk).delete()
    removed = bool(removed_totp or removed_static)
    if removed:
        _audit(actor, user, "mfa.reset", {"by": "operator" if by_operator else "self"})
    return removed
