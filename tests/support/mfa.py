"""Second factors in tests: a confirmed TOTP device, its current code, and a session signed in
with it (what a real sign-in with `otp_token` leaves behind; tests/tenants/test_mfa.py proves
that path end to end)."""

from __future__ import annotations

from typing import Any

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.mfa import TOTP_DEVICE_NAME


def enrol_totp(user: Any) -> TOTPDevice:
    """The user's confirmed TOTP device (made if missing)."""
    device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).first()
    return device or TOTPDevice.objects.create(
        user_id=user.pk, name=TOTP_DEVICE_NAME, confirmed=True
    )


def current_code(device: TOTPDevice, *, drift: int = 0) -> str:
    """The device's code now (`drift` steps later), as the authenticator app shows it."""
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=drift)
    return str(code).zfill(device.digits)


def sign_in_verified(client: Any, user: Any) -> Any:
    """Sign `client` in as `user` with a session that passed its second factor."""
    device = enrol_totp(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client
