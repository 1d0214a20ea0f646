"""Reading the portal needs no JavaScript: with scripts disabled in the browser, a signed-in
member signs in and reads the dashboard, the instances and an instance's page (its status,
addresses and operation history), the networks and the volumes, all rendered by the server."""

from __future__ import annotations

import pytest

from tests.support.browser import sign_in
from tests.support.callers import PASSWORD

pytestmark = pytest.mark.browser


def test_reading_pages_work_without_javascript(portal_world, live_server, browser):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.add_cookies([{"name": "andromede_language", "value": "en", "url": live_server.url}])
    page = context.new_page()
    try:
        sign_in(page, live_server, "acme-admin", PASSWORD, portal_world.devices["acme-admin"])
        assert page.evaluate("() => 1") == 1  # DevTools still evaluates; the page's own do not
        instance = portal_world.kwargs["acme"]["instance_id"]
        expectations = {
            "/t/acme/": "Quotas",
            "/t/acme/instances/": "acme-active",
            f"/t/acme/instances/{instance}/": "Operation history",
            "/t/acme/networks/": "Networks",
            "/t/acme/volumes/": "Volumes",
        }
        for path, text in expectations.items():
            response = page.goto(path)
            assert response is not None
            assert response.status == 200, path
            assert text in page.locator("main").inner_text(), path
        status = page.locator("#instance-status")
        page.goto(f"/t/acme/instances/{instance}/")
        assert status.get_attribute("data-status") == "active"
    finally:
        context.close()
