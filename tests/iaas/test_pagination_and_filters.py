"""Lists are cursor-paginated (newest first, stable under inserts, constant cost) and
filterable; a bad limit, cursor or filter is a 400, never silently ignored."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute.models import KeyPair
from compute.services.keypairs import keypair_import
from iaas.audit import Actor

pytestmark = [pytest.mark.django_db]

URL = "/api/v1/keypairs"


@pytest.fixture
def member(make_tenant, make_caller):
    return make_caller(make_tenant("acme"), "member")


@pytest.fixture
def make_keys(member):
    """make_keys(n) imports n keypairs named key-0 … key-(n-1), oldest first, each with its
    own key, and returns their names."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    actor = Actor(user_id=member.user.pk, label=member.user.username, credential="tests")
    made: list[str] = []

    def make(n: int, prefix: str = "key") -> list[str]:
        names = []
        for _ in range(n):
            name = f"{prefix}-{len(made)}"
            public = ed25519.Ed25519PrivateKey.generate().public_key()
            text = public.public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            ).decode()
            keypair_import(actor=actor, tenant=member.tenant, name=name, public_key=text)
            made.append(name)
            names.append(name)
        return names

    return make


def error_code(response) -> str:
    assert response.status_code == 400, response.content
    return response.json()["error"]["code"]


def walk(client, url: str) -> tuple[list[str], list[dict]]:
    """Follow `next` links from `url`; every name seen, and every page."""
    names: list[str] = []
    pages: list[dict] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        page = response.json()
        pages.append(page)
        names += [item["name"] for item in page["results"]]
        url = page["next"]
    return names, pages


def test_following_next_links_returns_every_keypair_once_newest_first(member, make_keys):
    created = make_keys(7)
    names, pages = walk(member.client(), f"{URL}?limit=3")
    assert [len(page["results"]) for page in pages] == [3, 3, 1]
    assert names == list(reversed(created))
    assert pages[0]["previous"] is None
    assert pages[1]["previous"] is not None
    assert pages[-1]["next"] is None
    assert all(page["next"].startswith("http://testserver/api/v1/keypairs?") for page in pages[:-1])


def test_previous_links_walk_back(member, make_keys):
    created = make_keys(5)
    client = member.client()
    _, pages = walk(client, f"{URL}?limit=2")
    back = client.get(pages[2]["previous"]).json()
    assert [item["name"] for item in back["results"]] == list(reversed(created))[2:4]


def test_pages_are_stable_when_keypairs_are_added_meanwhile(member, make_keys):
    created = make_keys(6)
    client = member.client()
    first = client.get(f"{URL}?limit=3").json()
    make_keys(2, prefix="late")  # newer than everything: must not shift the next page
    rest, _ = walk(client, first["next"])
    seen = [item["name"] for item in first["results"]] + rest
    assert seen == list(reversed(created))


def test_default_page_size_and_the_largest_limit(member, make_keys):
    make_keys(3)
    client = member.client()
    assert len(client.get(URL).json()["results"]) == 3
    assert client.get(f"{URL}?limit=1000").status_code == 200
    assert len(client.get(f"{URL}?limit=1").json()["results"]) == 1


@pytest.mark.parametrize(
    "limit", ["0", "-1", "1001", "abc", "1.5", "", "10e2", "0x10", "\uff15", " 5", "1_0"]
)
def test_limit_out_of_range_or_not_an_integer(member, limit):
    response = member.client().get(URL, {"limit": limit})
    assert error_code(response) == "invalid_limit"
    assert "limit" in response.json()["error"]["details"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "",
        _b64(b"x=1"),
        _b64("p=été".encode()),
        _b64(b"o=abc"),
        _b64(b"o=-5"),
        _b64(b"p=not-a-date"),
        _b64(b"r=1&p=2024-13-45"),
        _b64(b"p=2024-01-01T00:00:00"),  # naive: cursors written by the API carry a zone
        _b64(b"p=99999999999999999999999"),
    ],
)
def test_garbage_cursor_is_invalid_cursor(member, make_keys, cursor):
    make_keys(2)
    response = member.client().get(URL, {"cursor": cursor})
    assert error_code(response) == "invalid_cursor"


def test_a_forged_cursor_on_an_id_ordered_list_is_invalid_cursor(make_tenant, make_caller):
    admin = make_caller(make_tenant("acme"), "admin")
    response = admin.client().get("/api/v1/audit-events", {"cursor": _b64(b"p=not-a-number")})
    assert error_code(response) == "invalid_cursor"


@pytest.mark.parametrize("query", [{"nmae": "x"}, {"tenant": "other"}, {"page": "2"}])
def test_unknown_query_parameter_is_refused(member, make_keys, query):
    make_keys(1)
    response = member.client().get(URL, query)
    assert error_code(response) == "unknown_filter"
    details = response.json()["error"]["details"]
    assert set(query) <= set(details)
    assert details["allowed"] == ["cursor", "fingerprint", "key_type", "limit", "name"]


def test_filter_by_name_fingerprint_and_type(member, make_keys, ssh_public_keys):
    make_keys(3)
    client = member.client()
    rsa = client.post(
        URL, {"name": "rsa", "public_key": ssh_public_keys["rsa2048"]}, format="json"
    ).json()
    target = KeyPair.objects.get(name="key-1")

    def names(**query) -> list[str]:
        response = client.get(URL, query)
        assert response.status_code == 200, response.content
        return [item["name"] for item in response.json()["results"]]

    assert names(name="key-1") == ["key-1"]
    assert names(name="key") == []  # exact, not a prefix search
    assert names(fingerprint=target.fingerprint) == ["key-1"]
    assert names(fingerprint=rsa["fingerprint"]) == ["rsa"]
    assert names(key_type="ssh-rsa") == ["rsa"]
    assert names(key_type="ssh-ed25519") == ["key-2", "key-1", "key-0"]
    assert names(name="key-1", key_type="ssh-rsa") == []
    assert names(name="nope") == []


def test_filters_and_pages_combine(member, make_keys):
    make_keys(5)
    names, pages = walk(member.client(), f"{URL}?key_type=ssh-ed25519&limit=2")
    assert names == ["key-4", "key-3", "key-2", "key-1", "key-0"]
    assert "key_type=ssh-ed25519" in pages[0]["next"]


def test_a_list_page_costs_the_same_queries_whatever_its_size(member, make_keys):
    make_keys(60)
    client = member.client()
    client.get(URL)  # warm up: the token's last-use stamp is written once a minute at most

    def queries_for(limit: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(URL, {"limit": limit})
        assert response.status_code == 200
        assert len(response.json()["results"]) == limit
        return len(captured.captured_queries)

    small, large = queries_for(5), queries_for(50)
    assert small == large
    assert large <= 5  # token, membership check, tenant context, the page itself


def test_the_next_page_costs_no_more_than_the_first(member, make_keys):
    make_keys(12)
    client = member.client()
    first = client.get(URL, {"limit": 5}).json()
    with CaptureQueriesContext(connection) as on_first:
        client.get(URL, {"limit": 5})
    with CaptureQueriesContext(connection) as on_next:
        client.get(first["next"])
    assert len(on_next.captured_queries) == len(on_first.captured_queries)


# ---- Review item 12: filters read what the schema says, and refuse the rest -----------------


@pytest.fixture
def admin(make_tenant, make_caller):
    return make_caller(make_tenant("globex"), "admin")


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00",  # no offset: which time zone?
        "2026-01-01",  # a date, not a date-time
        "2026-01-01T00:00:00 01:00",  # `+01:00` sent unencoded: the `+` reads as a space
        "2026-10-25T02:30:00",  # no offset, and twice in Paris that night
        "2026-02-30T00:00:00Z",
        "2026-01-01T00:00:00+99:00",
        "yesterday",
    ],
)
def test_a_date_time_filter_needs_a_date_a_time_and_an_offset(admin, value):
    response = admin.client().get("/api/v1/audit-events", {"created_after": value})
    assert error_code(response) == "invalid"
    assert "RFC 3339" in response.json()["error"]["details"]["created_after"][0]


def test_date_time_filters_take_any_offset(admin):
    client = admin.client()

    def ids(created_after: str) -> list[int]:
        response = client.get("/api/v1/audit-events", {"created_after": created_after})
        assert response.status_code == 200, response.content
        return [event["id"] for event in response.json()["results"]]

    newest = client.get("/api/v1/audit-events").json()["results"][0]
    at = datetime.fromisoformat(newest["created_at"])
    for offset in (timedelta(hours=-5), timedelta(0), timedelta(hours=5, minutes=30)):
        zone = timezone(offset)
        assert newest["id"] in ids(at.astimezone(zone).isoformat())
        assert newest["id"] not in ids((at + timedelta(seconds=1)).astimezone(zone).isoformat())
    assert newest["id"] in ids(at.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    # Offsets PostgreSQL does not take (beyond ±15:59) are read too: the fuzzer's 500.
    assert newest["id"] in ids(at.astimezone(timezone(timedelta(hours=18, minutes=2))).isoformat())


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-18:02"])
def test_a_date_time_filter_outside_the_calendar_is_refused(admin, value):
    response = admin.client().get("/api/v1/audit-events", {"created_after": value})
    assert error_code(response) == "invalid"
    assert "out of range" in response.json()["error"]["details"]["created_after"][0]


@pytest.mark.parametrize("value", ["1", "0", "yes", "True", "revoked"])
def test_a_boolean_filter_takes_true_or_false_only(admin, value):
    """django-filter read anything but `true`/`false` as "no filter" and listed every token."""
    response = admin.client().get("/api/v1/tokens", {"revoked": value})
    assert error_code(response) == "invalid"
    assert "revoked" in response.json()["error"]["details"]


def test_the_revoked_filter(admin):
    from tenants import services
    from tests.support.callers import SYSTEM

    spare, _ = services.token_create(
        actor=SYSTEM, user=admin.user, tenant=admin.tenant, name="spare", role="reader"
    )
    services.token_revoke(actor=SYSTEM, token=spare)
    client = admin.client()

    def names(revoked: str) -> list[str]:
        response = client.get("/api/v1/tokens", {"revoked": revoked})
        assert response.status_code == 200, response.content
        return [token["name"] for token in response.json()["results"]]

    assert names("true") == ["spare"]
    assert names("false") == ["test"]
