"""The portal's Content Security Policy holds in a real browser: a script the page did not load
from the server does not run, and the harness's axe-core, injected through DevTools, runs on
that same page without the policy being weakened (tests/support/browser.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from portal.middleware import CONTENT_SECURITY_POLICY
from tenants import services as tenant_services
from tenants.models import Role
from tests.factories import SYSTEM
from tests.support.browser import AXE_VERSION, run_axe, sign_in
from tests.support.callers import PASSWORD

pytestmark = pytest.mark.browser

#: Listens for CSP violations, then appends an inline <script> that would set a flag.
INJECT_INLINE_SCRIPT = """() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
        window.__violations.push({directive: event.effectiveDirective,
                                  blocked: event.blockedURI, sample: event.sample});
    });
    const script = document.createElement('script');
    script.textContent = 'window.__inlineRan = true;';
    document.body.appendChild(script);
}"""


def inline_script_ran(page) -> bool:
    page.evaluate(INJECT_INLINE_SCRIPT)
    page.wait_for_timeout(200)  # a violation event is queued as a task: let it be dispatched
    return bool(page.evaluate("() => window.__inlineRan === true"))


def test_an_inline_script_does_not_run_on_a_portal_page_and_axe_still_does(
    live_server, new_context, make_tenant
):
    tenant = make_tenant("acme")
    get_user_model().objects.create_user(username="acme-member", password=PASSWORD)
    tenant_services.membership_add(
        actor=SYSTEM, tenant=tenant, username="acme-member", role=Role.MEMBER
    )
    page = new_context("en").new_page()
    sign_in(page, live_server, "acme-member", PASSWORD)

    response = page.goto("/t/acme/")

    assert response is not None
    assert response.status == 200
    assert page.locator("h1").count() == 1  # the real dashboard, not an error page
    assert not inline_script_ran(page)
    page.wait_for_function("() => window.__violations.length > 0")
    [violation] = page.evaluate("() => window.__violations")
    assert violation["directive"] == "script-src-elem"
    assert violation["blocked"] == "inline"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY  # production's, nothing inline

    results = run_axe(page)  # the harness's injection, on the same page

    assert results["testEngine"] == {"name": "axe-core", "version": AXE_VERSION}
    assert results["passes"]  # rules were really checked
    assert not inline_script_ran(page)  # the policy still holds after axe ran


def test_the_same_inline_script_runs_on_a_page_without_the_policy(browser):
    """The control: what the portal's policy blocks is a script that would otherwise run."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content("<!doctype html><html lang='en'><title>x</title><body></body></html>")
        assert inline_script_ran(page)
        assert page.evaluate("() => window.__violations") == []
    finally:
        context.close()
