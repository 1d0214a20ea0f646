"""The browser tests' harness (tests/browser, DESIGN §12): Debian's Chromium driven by
Playwright, signing in through the portal's own form, axe-core injected into a page to check
its accessibility, and screenshots.

- Chromium is `/usr/bin/chromium` (scripts/setup.sh installs Debian's `chromium` in the test
  mode); Playwright's own browser download is never used. A missing browser fails the tests
  with what to run: CI must never skip them.
- axe-core comes from npm, fetched and checked against its published integrity by
  scripts/axe-core.sh into a cache outside the checkout. It is injected with
  `page.evaluate`, which runs through the DevTools protocol: the page's Content Security
  Policy governs the page's own scripts, not the debugger's, so the production CSP stays as
  it is (no `bypass_csp`; tests/browser/test_csp.py proves both).
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
#: How the tests start it: niced, and unable to raise its own priority (see the script).
CHROMIUM_LAUNCHER = Path(__file__).with_name("chromium-niced")
AXE_VERSION = "4.14.1"
#: What axe checks: WCAG 2.0 and 2.1, levels A and AA (RGAA 4 follows WCAG 2.1 AA).
WCAG_21_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
#: The portal's language cookie (settings.LANGUAGE_COOKIE_NAME): French unless it says "en".
LANGUAGE_COOKIE = "andromede_language"
#: What the browser lane's summary reports (tests/browser/conftest.py): Chromium's start, and
#: the seconds of each page check by language (tests/browser/test_every_page.py).
STARTED: dict[str, float] = {}
TIMINGS: dict[str, list[float]] = {}
SURVEYED: dict[str, dict[str, int]] = {}  # by language: how many pages of each kind


def axe_core_path() -> Path:
    """axe.min.js where scripts/axe-core.sh keeps it ($ANDROMEDE_NPM_CACHE, else
    /var/cache/andromede/npm)."""
    cache = Path(os.environ.get("ANDROMEDE_NPM_CACHE", "/var/cache/andromede/npm"))
    return cache / f"axe-core-{AXE_VERSION}" / "package" / "axe.min.js"


@functools.cache
def axe_source() -> str:
    path = axe_core_path()
    if not path.is_file():
        pytest.fail(
            f"axe-core {AXE_VERSION} is not at {path}: run scripts/axe-core.sh (or "
            "scripts/setup.sh test), which fetches it from npm and checks its integrity",
            pytrace=False,
        )
    return path.read_text()


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; a clear failure when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Debian's Chromium is not installed ({CHROMIUM} is missing): run "
            "scripts/setup.sh test, or apt-get install chromium. The browser tests never "
            "download Playwright's browser.",
            pytrace=False,
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM_LAUNCHER), headless=True)


# ---- Signing in ------------------------------------------------------------------------------


def totp_code(device: TOTPDevice) -> str:
    """A code the device accepts now: the one its app shows, or, when that code was already
    used (django-otp refuses a time step at or before its last used one, so two sign-ins in the
    same 30 s would collide), the next step's, which the device's tolerance accepts."""
    device.refresh_from_db()
    for _attempt in range(3):
        now_steps = (int(time.time()) - device.t0) // device.step
        wanted = max(now_steps + device.drift, device.last_t + 1)
        if wanted <= now_steps + device.drift + device.tolerance:
            code = totp(
                device.bin_key, step=device.step, t0=device.t0, digits=device.digits,
                drift=wanted - now_steps,
            )  # fmt: skip
            return str(code).zfill(device.digits)
        time.sleep(device.step - (time.time() - device.t0) % device.step + 0.1)
    raise AssertionError(f"no TOTP code left for {device}: signed in too often")


def sign_in(
    page: Page,
    live_server: Any,
    username: str,
    password: str,
    totp_device: TOTPDevice | None = None,
    *,
    path: str = "/login/",
) -> None:
    """Sign in through the portal's sign-in form (/login/; operators': path="/ops/login/"),
    with the device's current TOTP code when given, and wait for the page it leads to; fails
    with the form's error if it stays there."""
    page.goto(f"{live_server.url}{path}")
    form = page.locator("main form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    if totp_device is not None:
        form.locator("input[name=otp_token]").fill(totp_code(totp_device))
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    if page.url.split("?")[0].endswith(path):
        raise AssertionError(
            f"{username} could not sign in: {page.locator('main').inner_text()[:500]}"
        )


# ---- axe-core --------------------------------------------------------------------------------


def inject_axe(page: Page) -> None:
    """Put axe-core into the page (once): evaluated through DevTools, which the page's CSP does
    not govern. The source is the body of a function, as Playwright evaluates a string that
    looks like one as a function to call; axe-core's UMD wrapper sets `window.axe`."""
    if page.evaluate("() => typeof window.axe === 'object'"):
        return
    page.evaluate("() => {\n" + axe_source() + "\n}")
    version = page.evaluate("() => window.axe && window.axe.version")
    assert version == AXE_VERSION, f"axe-core was not injected (found {version!r})"


def run_axe(page: Page) -> dict[str, Any]:
    """axe-core's results for the page as it is now, WCAG 2.1 A and AA rules only."""
    inject_axe(page)
    options = {
        "runOnly": {"type": "tag", "values": list(WCAG_21_AA)},
        "resultTypes": ["violations"],
    }
    results: dict[str, Any] = page.evaluate(
        """async (options) => {
            const r = await window.axe.run(document, options);
            return {testEngine: r.testEngine, url: r.url, passes: r.passes.map(p => p.id),
                    violations: r.violations.map(v => ({
                        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                        nodes: v.nodes.map(n => ({target: n.target.map(String),
                                                  html: n.html, summary: n.failureSummary})),
                    }))};
        }""",
        options,
    )
    return results


def axe_violations(
    page: Page, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[dict[str, Any]]:
    """The page's WCAG 2.1 A/AA violations of those impacts, as dicts: id, impact, help,
    helpUrl and the nodes (target selectors, html, axe's summary)."""
    return [v for v in run_axe(page)["violations"] if v["impact"] in impacts]


def describe_violations(violations: list[dict[str, Any]], *, nodes: int = 3) -> str:
    """Violations as lines a person reads: rule, impact, what it asks, and the elements."""
    lines = []
    for violation in violations:
        lines.append(f"  {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:nodes]:
            lines.append(f"    at {' '.join(node['target'])}: {node['html'][:160]}")
        if len(violation["nodes"]) > nodes:
            lines.append(f"    … and {len(violation['nodes']) - nodes} more")
    return "\n".join(lines)


# ---- Screenshots -----------------------------------------------------------------------------


def screenshot_dir() -> Path:
    configured = os.environ.get("ANDROMEDE_PORTAL_SCREENSHOTS")
    return Path(configured) if configured else Path(settings.BASE_DIR) / "var" / "screenshots"


def screenshot(page: Page, name: str) -> Path:
    """The whole page as <dir>/<name>.png, dir being $ANDROMEDE_PORTAL_SCREENSHOTS or
    var/screenshots."""
    path = screenshot_dir() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
