"""Quotas hold under real concurrency (DESIGN §12): many parallel HTTP requests against a
live server on PostgreSQL, each on its own database connection, can never pass a limit.
Then how limits behave when changed: lowered below usage, and unlimited (-1)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connection

from compute.models import KeyPair
from iaas.audit import Actor
from tenants import services
from tenants.models import Role

pytestmark = [pytest.mark.django_db]

SYSTEM = Actor.system("tests")
PARALLEL = 30

# Django's test server listens with a backlog of 10: thirty clients connecting at the same
# instant overflow it and the kernel resets some connections before Django ever sees them.
# That backlog belongs to the test harness, not to the application (gunicorn's is 2048), so
# it is raised here, at collection, before any test starts the session-wide live server.
ThreadedWSGIServer.request_queue_size = max(ThreadedWSGIServer.request_queue_size, 128)
LIMIT = 5


def new_public_key(comment: str) -> str:
    """A fresh OpenSSH ed25519 public key."""
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + f" {comment}"


def http(
    base_url: str, method: str, path: str, token: str, body: Any = None, **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One real HTTP request; (status, JSON body, headers) whatever the status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the URL is the live test server's
        base_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)


def in_parallel(calls: list[Any]) -> list[Any]:
    """Run every call on its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> Any:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DESIGN §12)")
def test_parallel_creates_never_pass_the_quota(live_server, make_tenant, make_caller):
    tenant = make_tenant("racers")
    caller = make_caller(tenant, Role.MEMBER)
    services.quota_set(actor=SYSTEM, tenant=tenant, resource="keypairs", limit=LIMIT)
    bodies = [{"name": f"key-{n:02d}", "public_key": new_public_key(f"k{n}")} for n in range(30)]

    answers = in_parallel(
        [
            (
                lambda body=body: http(
                    live_server.url, "POST", "/api/v1/keypairs", caller.token, body
                )
            )
            for body in bodies
        ]
    )

    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [201] * LIMIT + [403] * (PARALLEL - LIMIT)
    for status, body, _ in answers:
        if status == 403:
            assert body["error"]["code"] == "quota_exceeded"
            assert body["error"]["details"]["limit"] == LIMIT
            assert body["error"]["details"]["usage"] == LIMIT
    created = {body["name"] for status, body, _ in answers if status == 201}
    assert set(KeyPair.objects.filter(tenant=tenant).values_list("name", flat=True)) == created
    assert KeyPair.objects.count() == LIMIT
    status, quota_page, _ = http(live_server.url, "GET", "/api/v1/quotas", caller.token)
    assert status == 200
    assert [line for line in quota_page["results"] if line["resource"] == "keypairs"] == [
        {"resource": "keypairs", "limit": LIMIT, "usage": LIMIT, "remaining": 0}
    ]


# ---- Changing limits -----------------------------------------------------------------------


def _create(client: Any, name: str) -> Any:
    return client.post(
        "/api/v1/keypairs", {"name": name, "public_key": new_public_key(name)}, format="json"
    )


def _quota_line(client: Any) -> dict[str, Any]:
    response = client.get("/api/v1/quotas")
    assert response.status_code == 200
    [line] = [line for line in response.json()["results"] if line["resource"] == "keypairs"]
    return line


def test_lowering_a_limit_below_usage_keeps_what_exists_and_blocks_new_creates(
    make_tenant, make_caller
):
    tenant = make_tenant("shrinking")
    client = make_caller(tenant, Role.MEMBER).client()
    services.quota_set(actor=SYSTEM, tenant=tenant, resource="keypairs", limit=5)
    ids = [_create(client, f"key-{n}").json()["id"] for n in range(3)]

    services.quota_set(actor=SYSTEM, tenant=tenant, resource="keypairs", limit=1)

    listed = client.get("/api/v1/keypairs").json()["results"]
    assert sorted(k["id"] for k in listed) == sorted(ids)
    assert _quota_line(client) == {"resource": "keypairs", "limit": 1, "usage": 3, "remaining": 0}
    refused = _create(client, "one-more")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert refused.json()["error"]["details"] == {
        "resource": "keypairs",
        "limit": 1,
        "usage": 3,
        "requested": 1,
    }
    # Deleting still works; creating resumes only once usage is below the limit again.
    for keypair_id in ids[:2]:
        assert client.delete(f"/api/v1/keypairs/{keypair_id}").status_code == 204
    assert _create(client, "still-too-many").status_code == 403
    assert client.delete(f"/api/v1/keypairs/{ids[2]}").status_code == 204
    assert _create(client, "fits-again").status_code == 201
    assert KeyPair.objects.filter(tenant=tenant).count() == 1


def test_minus_one_means_unlimited(settings, make_tenant, make_caller):
    settings.DEFAULT_QUOTAS = {**settings.DEFAULT_QUOTAS, "keypairs": 2}
    tenant = make_tenant("boundless")
    client = make_caller(tenant, Role.MEMBER).client()
    assert _create(client, "one").status_code == 201
    assert _create(client, "two").status_code == 201
    assert _create(client, "three").status_code == 403  # the default limit applies

    services.quota_set(actor=SYSTEM, tenant=tenant, resource="keypairs", limit=-1)

    for name in ("three", "four", "five"):
        assert _create(client, name).status_code == 201
    assert _quota_line(client) == {
        "resource": "keypairs",
        "limit": -1,
        "usage": 5,
        "remaining": None,
    }


def test_zero_refuses_every_create(make_tenant, make_caller):
    tenant = make_tenant("frozen")
    client = make_caller(tenant, Role.MEMBER).client()
    services.quota_set(actor=SYSTEM, tenant=tenant, resource="keypairs", limit=0)
    refused = _create(client, "first")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert not KeyPair.objects.filter(tenant=tenant).exists()
