"""The browser harness itself (tests/support/browser.py, tests/support/portal_world.py) can
fail: axe-core finds what is wrong on a page that is wrong, an unknown URL kwarg is named in
the failure, signing in twice with TOTP within one time step still works, and the browser is
Debian's."""

from __future__ import annotations

import subprocess

import pytest
from django.contrib.auth import get_user_model

from tests.support.browser import CHROMIUM, axe_violations, describe_violations, totp_code
from tests.support.mfa import enrol_totp
from tests.support.portal_world import MissingKwarg, PortalPattern

pytestmark = pytest.mark.browser

BROKEN_PAGE = """<!doctype html><html><head><title>broken</title></head><body>
<main><h1>Broken</h1><form><input type="text" name="q"><button></button></form>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></main></body></html>"""


def test_axe_finds_the_violations_of_a_broken_page(browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content(BROKEN_PAGE)

        violations = axe_violations(page)
    finally:
        context.close()

    found = {v["id"] for v in violations}
    assert {"label", "image-alt", "button-name", "html-has-lang"} <= found, found
    assert all(v["impact"] in ("serious", "critical") for v in violations)
    text = describe_violations(violations)
    assert "label (critical): Form elements must have labels" in text
    assert 'at input: <input type="text" name="q">' in text


def test_the_browser_is_debians_chromium(browser):
    """Not a browser Playwright downloaded: the version /usr/bin/chromium reports."""
    reported = subprocess.run(
        [CHROMIUM, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert f"Chromium {browser.version} " in reported, (browser.version, reported)


def test_a_page_naming_an_unknown_kwarg_says_where_to_add_it():
    route = "t/<slug:tenant>/gizmos/<uuid:gizmo_id>/"
    pattern = PortalPattern(route=route, name="gizmo", pattern=None)

    with pytest.raises(MissingKwarg, match=r"add gizmo_id to tests/support/portal_world\.py"):
        pattern.url({"tenant": "acme"})
    assert pattern.url({"tenant": "acme", "gizmo_id": "42"}) == "/t/acme/gizmos/42/"


@pytest.mark.django_db
def test_two_sign_ins_within_one_time_step_each_get_a_code_the_device_accepts():
    user = get_user_model().objects.create_user(username="twice")
    device = enrol_totp(user)

    assert device.verify_token(totp_code(device))
    assert device.verify_token(totp_code(device))  # the same step's code would be refused
