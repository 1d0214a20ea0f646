"""The API's isolation and role rules hold on every portal page (DESIGN §9), page by page from
the URL patterns (tests/support/portal_world.portal_patterns walks portal.urls): another
tenant's object is a 404 under our tenant, another tenant's pages are a 404 to our users, a
reader's POST is refused (403, or 405 where the page takes no POST) and changes nothing, a
reader is shown no form that would be refused, and the operator console is a 404 to tenant
users. "Changes nothing": every business table (tests/support/api_checks.business_rows) and
no audit event but refusals.

The world (tests/support/portal_world.py) is made once for the module, in a transaction each
test's own savepoint returns to (as tests/test_isolation_matrix.py does)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import Resolver404, resolve

from iaas.models import AuditEvent
from tests.support.api_checks import business_rows, events_since, last_event_id
from tests.support.mfa import sign_in_verified
from tests.support.portal_world import (
    PortalPattern,
    PortalWorld,
    build_portal_world,
    portal_patterns,
    world_settings,
)

pytestmark = pytest.mark.django_db

PATTERNS = portal_patterns()
TENANT_PATTERNS = [p for p in PATTERNS if p.area == "tenant"]
#: Tenant pages that name an object besides the tenant.
OBJECT_PATTERNS = [p for p in TENANT_PATTERNS if set(p.kwargs) - {"tenant"}]
OPS_PATTERNS = [p for p in PATTERNS if p.area == "ops"]
#: Pages a reader may post to, as the API lets it: a reader mints and revokes its own reader
#: tokens (tests/test_isolation_matrix.py, test_reader_may_create_its_own_reader_token_…).
READER_WRITES = {"token-create", "token-revoke"}
ACME_USERS = ("acme-admin", "acme-member", "acme-reader")
FORM = re.compile(r"<form\b[^>]*>", re.IGNORECASE)
LINK = re.compile(r"""<a\b[^>]*\bhref\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def ids(patterns: list[PortalPattern]) -> list[str]:
    return [p.name or p.route for p in patterns]


@pytest.fixture(scope="module")
def module_world(
    django_db_setup: None,
    django_db_blocker: Any,
    tiny_qcow2: Any,
    ssh_public_keys: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PortalWorld]:
    folder = tmp_path_factory.mktemp("portal-world")
    with django_db_blocker.unblock(), transaction.atomic(), world_settings(folder):
        yield build_portal_world(tiny_qcow2, ssh_public_keys)
        transaction.set_rollback(True)


@pytest.fixture
def world(module_world: PortalWorld, db: None) -> PortalWorld:
    return module_world


def client_of(world: PortalWorld, username: str) -> Client:
    client = Client()
    client.cookies["andromede_language"] = "en"
    return sign_in_verified(client, world.user(username))


class Snapshot:
    """The business tables and the audit log's end, to show a request changed nothing."""

    def __init__(self) -> None:
        self.rows, self.since = business_rows(), last_event_id()

    def assert_unchanged(self, what: str) -> None:
        after = business_rows()
        changed = sorted(name for name, rows in after.items() if self.rows.get(name) != rows)
        written = [
            f"{event.action} ({event.outcome})"
            for event in events_since(self.since)
            if event.outcome != AuditEvent.Outcome.REFUSED
        ]
        assert (changed, written) == ([], []), (
            f"{what} changed the tables {changed} and audited {written}"
        )


def takes_no_post(response: Any) -> bool:
    """A 405 from a page that does not take POST at all (its Allow header says so)."""
    return response.status_code == 405 and "POST" not in response.get("Allow", "")


def refused_as_missing(posted: Any) -> bool:
    """A POST answered 404, or 405 by a page that takes no POST."""
    return posted.status_code == 404 or takes_no_post(posted)


def foreign_url(world: PortalWorld, pattern: PortalPattern) -> str:
    """The page under /t/acme/, every object it names being `other`'s."""
    return pattern.url({**world.kwargs["other"], "tenant": "acme"})


def test_the_walk_finds_the_portal():
    names = {p.name for p in PATTERNS}
    assert {"login", "dashboard", "ops"} <= names
    assert "login" in {p.name for p in PATTERNS if p.area == "login"}
    assert all(p.route.startswith("t/<slug:tenant>/") for p in TENANT_PATTERNS)
    assert OBJECT_PATTERNS
    assert names >= READER_WRITES, "READER_WRITES names a page that no longer exists"


@pytest.mark.parametrize("pattern", OBJECT_PATTERNS, ids=ids(OBJECT_PATTERNS))
def test_another_tenants_object_is_a_404_under_our_tenant(world, pattern):
    url = foreign_url(world, pattern)
    admin = client_of(world, "acme-admin")

    snapshot = Snapshot()
    got = admin.get(url)
    posted = admin.post(url)

    assert got.status_code in (404, 405), (url, got.status_code)
    assert refused_as_missing(posted), (url, posted.status_code)
    assert 404 in (got.status_code, posted.status_code), url
    snapshot.assert_unchanged(f"acme-admin's GET and POST of {url}")


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=ids(TENANT_PATTERNS))
def test_another_tenants_pages_are_a_404_to_our_users(world, pattern):
    url = pattern.url(world.kwargs["other"])

    for username in ("acme-admin", "acme-reader"):
        client = client_of(world, username)
        snapshot = Snapshot()
        got = client.get(url)
        posted = client.post(url)
        assert got.status_code in (404, 405), (username, url, got.status_code)
        assert refused_as_missing(posted), (username, url, posted.status_code)
        snapshot.assert_unchanged(f"{username}'s GET and POST of {url}")


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=ids(TENANT_PATTERNS))
def test_a_readers_post_is_refused_and_changes_nothing(world, pattern):
    url = pattern.url(world.kwargs["acme"])
    reader = client_of(world, "acme-reader")

    snapshot = Snapshot()
    posted = reader.post(url)

    if pattern.name in READER_WRITES:
        assert posted.status_code < 500, (url, posted.status_code)
    else:
        assert posted.status_code == 403 or takes_no_post(posted), (url, posted.status_code)
    snapshot.assert_unchanged(f"acme-reader's POST to {url}")


def post_forms(html: str, page_url: str) -> list[str]:
    """The paths the page's POST forms send to (a form without action posts to the page)."""
    targets = []
    for tag in FORM.findall(html):
        if not re.search(r"""method\s*=\s*["']?post""", tag, re.IGNORECASE):
            continue
        action = re.search(r"""action\s*=\s*["']([^"']*)["']""", tag)
        target = action.group(1) if action and action.group(1) else page_url
        targets.append(target.split("?")[0])
    return targets


def is_html(response: Any) -> bool:
    """A 200 with an HTML body (not a download, streamed or not)."""
    return (
        response.status_code == 200
        and not response.streaming
        and response["Content-Type"].startswith("text/html")
    )


def links(html: str) -> list[str]:
    return [href.split("?")[0].split("#")[0] for href in LINK.findall(html)]


def refused_write(path: str) -> bool:
    """Whether a reader posting to `path` would be refused: a tenant page of ours that
    readers may not write (the Resolver404 of a form's dead target counts too)."""
    try:
        match = resolve(path)
    except Resolver404:
        return True
    return "tenant" in match.kwargs and match.url_name not in READER_WRITES


#: Whether the reader's GET of a path shows a form posting to itself (a write's own page:
#: create, delete, …); one GET per path for the module (the world does not change).
_WRITE_PAGES: dict[str, bool] = {}


def write_page(reader: Client, path: str) -> bool:
    if path not in _WRITE_PAGES:
        page = reader.get(path)
        html = page.content.decode() if is_html(page) else ""
        _WRITE_PAGES[path] = path in post_forms(html, path) and refused_write(path)
    return _WRITE_PAGES[path]


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=ids(TENANT_PATTERNS))
def test_a_reader_is_shown_no_button_that_would_be_refused(world, pattern):
    """No form posting elsewhere that the reader would be refused, and no link to a write's
    own page (create, delete…). A write's own page, typed in by the reader, may show its form:
    posting it is refused (test_a_readers_post_is_refused_and_changes_nothing)."""
    url = pattern.url(world.kwargs["acme"])
    reader = client_of(world, "acme-reader")
    page = reader.get(url)
    if not is_html(page):
        return  # not a page the reader reads (the other tests hold what it answers)
    html = page.content.decode()

    forms = [t for t in post_forms(html, url) if t != url and refused_write(t)]
    linked = [
        href for href in set(links(html))
        if href.startswith("/t/acme/") and href != url and write_page(reader, href)
    ]  # fmt: skip

    assert (forms, linked) == ([], []), (
        f"{url} shows acme-reader forms it would be refused: {forms}, "
        f"and links to writes it would be refused: {linked}"
    )


@pytest.mark.parametrize("pattern", OPS_PATTERNS, ids=ids(OPS_PATTERNS))
def test_the_operator_console_is_a_404_to_tenant_users(world, pattern):
    url = pattern.url(world.kwargs["operator"])
    operator = sign_in_verified(Client(), world.user("operator"))
    assert operator.get(url).status_code in (200, 405), url  # the page is there

    for username in ACME_USERS:
        client = client_of(world, username)
        snapshot = Snapshot()
        got = client.get(url)
        posted = client.post(url)
        assert got.status_code in (404, 405), (username, url, got.status_code)
        assert refused_as_missing(posted), (username, url, posted.status_code)
        snapshot.assert_unchanged(f"{username}'s GET and POST of {url}")
