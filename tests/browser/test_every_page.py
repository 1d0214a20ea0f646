"""Every page of the portal, found in its URL patterns (tests/support/portal_world.py walks
portal.urls, the tenant pages' include with it): each answers a GET, and each HTML page,
opened in Chromium in French and in English, keeps the production CSP, breaks none of it, and
passes axe-core with no serious or critical WCAG 2.1 A/AA violation.

Who looks: acme-admin (TOTP) for the tenant pages and the account's, the operator (TOTP) for
/ops/, nobody for the sign-in pages. A pattern naming a URL kwarg the world does not know fails the
test (add it to tests/support/portal_world.py); a 405 to a GET is a POST-only endpoint, not a
page; a redirect must end on a page that answers; a download (not HTML) or a fragment (HTML
that is not a document) is answered but not opened. Anything else must be a 200."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Response

from portal.middleware import CONTENT_SECURITY_POLICY
from tests.support.browser import (
    LANGUAGE_COOKIE,
    SURVEYED,
    TIMINGS,
    axe_violations,
    describe_violations,
    screenshot,
    sign_in,
)
from tests.support.mfa import sign_in_verified
from tests.support.portal_world import (
    OPERATOR,
    PASSWORD,
    MissingKwarg,
    PortalPattern,
    PortalWorld,
    portal_patterns,
)

pytestmark = pytest.mark.browser

#: Who looks at each area's pages (tests/support/portal_world.PortalPattern.area), and the
#: world's kwargs their URLs are filled from.
VIEWER = {"tenant": "acme-admin", "account": "acme-admin", "ops": OPERATOR, "login": ""}
KWARGS = {"tenant": "acme", "account": "account", "ops": OPERATOR, "login": "acme"}
DOCUMENT = re.compile(r"\s*<!doctype html", re.IGNORECASE)


@dataclass
class Survey:
    """What the Django test client found at each pattern."""

    pages: list[tuple[PortalPattern, str]] = field(default_factory=list)  # (pattern, url)
    post_only: list[str] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def portal_client(world: PortalWorld, viewer: str, language: str) -> Client:
    client = Client()
    client.cookies[LANGUAGE_COOKIE] = language
    return sign_in_verified(client, world.user(viewer)) if viewer else client


def survey(world: PortalWorld, language: str) -> Survey:
    found = Survey()
    clients = {viewer: portal_client(world, viewer, language) for viewer in set(VIEWER.values())}
    for pattern in portal_patterns():
        try:
            url = pattern.url(world.kwargs[KWARGS[pattern.area]])
        except MissingKwarg as missing:
            found.failures.append(str(missing))
            continue
        client = clients[VIEWER[pattern.area]]
        response = client.get(url)
        status = response.status_code
        if status == 405:
            found.post_only.append(url)
            continue
        if status in (301, 302, 303, 307, 308):
            final = client.get(url, follow=True)
            target = final.redirect_chain[-1][0] if final.redirect_chain else "?"
            if final.status_code != 200 or target.startswith(("/login/", "/account/mfa/")):
                found.failures.append(
                    f"{url}: redirected to {target}, which answered {final.status_code}"
                )
            else:
                found.redirects.append(f"{url} → {target}")
            continue
        if status != 200:
            found.failures.append(f"{url} ({pattern.name}): GET answered {status}, not 200")
            continue
        if not response["Content-Type"].startswith("text/html"):
            found.downloads.append(url)
        elif not DOCUMENT.match(response.content.decode()):
            found.fragments.append(url)
        else:
            found.pages.append((pattern, url))
    return found


def signed_in_tabs(
    world: PortalWorld, live_server: Any, new_context: Callable[..., BrowserContext], language: str
) -> dict[str, Tab]:
    """One tab per viewer, signed in once through its sign-in form with its TOTP code
    (/login/ for acme-admin, /ops/login/ for the operator); its context starts from that
    sign-in's storage state. Each viewer's pages open one after the other in its tab: staying in one
    renderer, Chromium compiles axe-core once rather than on every page (0.1 s a page, not
    0.4 s)."""
    tabs = {"": Tab(new_context(language).new_page())}
    for viewer in sorted({v for v in VIEWER.values() if v}):
        signing = new_context(language)
        path = "/ops/login/" if viewer == OPERATOR else "/login/"
        device = world.devices[viewer]
        sign_in(signing.new_page(), live_server, viewer, PASSWORD, device, path=path)
        tabs[viewer] = Tab(new_context(language, storage_state=signing.storage_state()).new_page())
        signing.close()
    return tabs


class Tab:
    """A browser tab that checks the pages it opens (`check`): its answer, its CSP header,
    what the CSP refused, its scripts' errors, a resource that failed to load, and axe-core's
    serious and critical violations."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.problems.append(f"refused by the CSP: {message.text}")

    def _response(self, response: Response) -> None:
        # The browser asks for /favicon.ico by itself; the portal has none (not a page's fault).
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.problems.append(f"{response.url} answered {response.status}")

    def check(self, url: str) -> list[str]:
        self.problems = []
        response = self.page.goto(url)
        if response is None or response.status != 200:
            return [f"answered {response and response.status} in the browser"]
        policy = response.headers.get("content-security-policy")
        if policy != CONTENT_SECURITY_POLICY:
            self.problems.append(f"the CSP header is {policy!r}, not the production one")
        violations = axe_violations(self.page)
        if violations:
            self.problems.append("axe-core:\n" + describe_violations(violations))
        return self.problems


def assert_french_is_compiled() -> None:
    """Without the compiled catalogue the French pages are English words in a page that says
    lang="fr": neither language would be checked."""
    po = Path(settings.BASE_DIR) / "portal" / "locale" / "fr" / "LC_MESSAGES" / "django.po"
    mo = po.with_suffix(".mo")
    fresh = mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime
    assert fresh, (
        f"{mo} is missing or older than its .po: run manage.py compilemessages --locale fr "
        "--ignore '.venv/*' (scripts/setup.sh does)"
    )


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_page_answers_and_passes_axe(language, portal_world, live_server, new_context):
    if language == "fr":
        assert_french_is_compiled()
    found = survey(portal_world, language)
    assert len(found.pages) >= 10, found  # the walk found the portal, not an empty list
    SURVEYED[language] = {
        "pages": len(found.pages), "POST-only endpoints": len(found.post_only),
        "redirects": len(found.redirects), "downloads": len(found.downloads),
        "fragments": len(found.fragments), "failures": len(found.failures),
    }  # fmt: skip

    tabs = signed_in_tabs(portal_world, live_server, new_context, language)
    # Screenshots of every page, in French, only when asked for (the variable set).
    shots = language == "fr" and bool(os.environ.get("ANDROMEDE_PORTAL_SCREENSHOTS"))
    timings = TIMINGS.setdefault(language, [])
    failures = list(found.failures)
    for pattern, url in found.pages:
        tab = tabs[VIEWER[pattern.area]]
        started = time.monotonic()
        problems = tab.check(url)
        timings.append(time.monotonic() - started)
        if shots:
            screenshot(tab.page, f"{language}-{pattern.name}")
        if problems:
            failures.append(f"{url} ({pattern.name}, {language}):\n  " + "\n  ".join(problems))

    assert not failures, (
        f"{len(failures)} of {len(found.pages)} pages failed in {language}:\n\n"
        + "\n\n".join(failures)
    )
