"""A tenant admin enrols a second factor in the browser: the password alone opens only the
enrolment page; the page shows a QR code and the secret; a code computed from that secret
(as the phone's app does) confirms it; the recovery codes are shown once; then the tenant's
pages open, and the next sign-in needs a code."""

from __future__ import annotations

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.models import Role
from tests.support.browser import screenshot, sign_in
from tests.support.callers import PASSWORD

pytestmark = pytest.mark.browser


def code_for(secret: str) -> str:
    import base64

    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return str(totp(key)).zfill(6)


def test_an_admin_enrols_with_the_qr_code_page(live_server, new_context, make_tenant, make_caller):
    admin = make_caller(make_tenant("acme"), Role.ADMIN).user
    page = new_context("fr").new_page()

    sign_in(page, live_server, admin.username, PASSWORD)  # required, not enrolled: password only
    page.goto("/t/acme/")
    assert page.url.endswith("/account/mfa/")
    page.get_by_role("button", name="Enregistrer une application d'authentification").click()
    qr = page.locator(".qr svg")
    assert qr.count() == 1
    secret = page.locator("code.mono").inner_text().strip()
    screenshot(page, "mfa-enrolment")

    page.locator("#id_code").fill("000000" if code_for(secret) != "000000" else "111111")
    page.get_by_role("button", name="Confirmer").click()
    assert "Ce code n'est pas valide" in page.locator("main").inner_text()
    assert page.locator(".qr svg").count() == 1  # the same enrolment is shown again
    page.wait_for_timeout(2100)  # django-otp throttles guesses: 1 s after one failure, then 2 s
    page.locator("#id_code").fill(code_for(secret))
    page.get_by_role("button", name="Confirmer").click()

    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    assert StaticToken.objects.filter(device__user=admin, token=codes[0]).exists()
    assert TOTPDevice.objects.get(user=admin).confirmed
    page.goto("/t/acme/")
    assert page.url.endswith("/t/acme/")
    page.goto("/account/mfa/")
    assert "Il vous reste 10 codes de secours" in page.locator("main").inner_text()
