"""Fixtures of the browser tests: one Chromium for the whole session, a fresh context (cookies,
storage) per test and language, pytest-django's `live_server` for the browser to talk to,
and the portal world (tests/support/portal_world.py). Every test here is marked `browser`
(its module's pytestmark) and runs in the fast lane: tests/support/lanes.py counts its
minutes as the "browser (chromium)" lane."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from tests.support.browser import LANGUAGE_COOKIE, STARTED, SURVEYED, TIMINGS, launch_chromium
from tests.support.portal_world import portal_world  # noqa: F401 - a fixture


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here must carry the `browser` marker (a module-level pytestmark), or its
    minutes would be counted in the fast lane's (tests/support/lanes.py)."""
    here = Path(__file__).parent
    unmarked = [
        item.nodeid
        for item in items
        if item.path.is_relative_to(here) and not item.get_closest_marker("browser")
    ]
    if unmarked:
        raise pytest.UsageError(f"mark these browser tests `browser` (pytestmark): {unmarked}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not STARTED:
        return
    terminalreporter.section("browser (chromium)")
    terminalreporter.write_line(f"Chromium started in {STARTED['chromium']:.1f} s")
    for language, kinds in sorted(SURVEYED.items()):
        counted = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        terminalreporter.write_line(f"{language}: the URL patterns hold {counted}")
    for language, seconds in sorted(TIMINGS.items()):
        if seconds:
            terminalreporter.write_line(
                f"{language}: {len(seconds)} pages checked in {sum(seconds):.1f} s, "
                f"{sum(seconds) / len(seconds):.2f} s a page (the slowest {max(seconds):.2f} s)"
            )


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, started once. It runs an asyncio event loop in this thread for
    as long as it is started, and Django then takes every ORM call made by the tests
    themselves (building the world, checking the database) for one made from async code, and
    refuses it (SynchronousOnlyOperation): DJANGO_ALLOW_ASYNC_UNSAFE lifts that check while
    Playwright runs. Nothing here is async: the test's calls are sequential, and the live
    server answers the browser from its own thread."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as driver:
            yield driver
    finally:
        if before is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, started once per session (headless)."""
    started = time.monotonic()
    chromium = launch_chromium(playwright)
    STARTED["chromium"] = time.monotonic() - started
    yield chromium
    chromium.close()


@pytest.fixture
def new_context(browser: Browser, live_server: Any) -> Iterator[Callable[..., BrowserContext]]:
    """new_context(language="fr", storage_state=None) → a fresh browser context on the live
    server, speaking `language` (the portal's language cookie and the browser's locale),
    optionally starting from a signed-in storage state. Closed at the test's end."""
    made: list[BrowserContext] = []

    def make(language: str = "fr", storage_state: Any = None) -> BrowserContext:
        locale = {"fr": "fr-FR", "en": "en-GB"}[language]
        context = browser.new_context(
            base_url=live_server.url, locale=locale, storage_state=storage_state
        )
        context.add_cookies([{"name": LANGUAGE_COOKIE, "value": language, "url": live_server.url}])
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
