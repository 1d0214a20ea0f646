"""`Idempotency-Key` on POST creates (DESIGN §10): a retry returns the first answer, never a
second resource, including when the retries arrive at the same instant."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connection

from compute.models import KeyPair
from iaas.audit import Actor
from iaas.models import AuditEvent, IdempotencyRecord
from tenants import services
from tenants.models import Role

pytestmark = [pytest.mark.django_db]

SYSTEM = Actor.system("tests")

# Django's test server listens with a backlog of 10; simultaneous clients could overflow it
# and be reset by the kernel before Django sees them (gunicorn's backlog is 2048). Raised at
# collection, before any test starts the session-wide live server.
ThreadedWSGIServer.request_queue_size = max(ThreadedWSGIServer.request_queue_size, 128)


@pytest.fixture
def member(make_tenant, make_caller):
    return make_caller(make_tenant("acme"), Role.MEMBER)


def post_keypair(client: Any, body: dict[str, str], key: str | None) -> Any:
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post("/api/v1/keypairs", body, format="json", **headers)


def keypair_create_successes() -> int:
    return AuditEvent.objects.filter(action="keypair.create", outcome="success").count()


def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(member, ssh_public_keys):
    client = member.client()
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}

    first = post_keypair(client, body, "retry-1")
    second = post_keypair(client, body, "retry-1")

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    assert second.status_code == first.status_code
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert KeyPair.objects.count() == 1
    assert str(KeyPair.objects.get().pk) == first.json()["id"]
    assert keypair_create_successes() == 1


def test_without_a_key_a_retry_is_a_new_request(member, ssh_public_keys):
    """The control for the test above: the same body twice without a key is not replayed."""
    client = member.client()
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    assert post_keypair(client, body, None).status_code == 201
    again = post_keypair(client, body, None)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_exists"


def test_the_same_key_with_another_body_is_a_conflict(member, ssh_public_keys):
    client = member.client()
    first = post_keypair(
        client, {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}, "reuse-1"
    )
    assert first.status_code == 201

    reused = post_keypair(
        client, {"name": "desktop", "public_key": ssh_public_keys["ecdsa"]}, "reuse-1"
    )

    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert set(reused.json()["error"]) == {"code", "message", "details"}
    assert "Idempotent-Replayed" not in reused
    assert list(KeyPair.objects.values_list("name", flat=True)) == ["laptop"]
    assert IdempotencyRecord.objects.count() == 1
    assert keypair_create_successes() == 1


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "clé-unique", "with space", "tab\tkey", "\x7fdel"],
    ids=["empty", "too-long", "non-ascii", "space", "tab", "control"],
)
def test_an_invalid_key_is_refused_and_creates_nothing(member, ssh_public_keys, key):
    response = post_keypair(
        member.client(), {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}, key
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert not KeyPair.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_the_longest_valid_key_is_accepted(member, ssh_public_keys):
    key = "k" * 255
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    assert post_keypair(member.client(), body, key).status_code == 201
    assert post_keypair(member.client(), body, key)["Idempotent-Replayed"] == "true"
    assert KeyPair.objects.count() == 1


def test_keys_are_per_caller(make_tenant, make_caller, ssh_public_keys):
    """Another tenant, or another user of the same tenant, using the same key and body gets
    its own resource, never the first caller's answer."""
    acme = make_tenant("acme")
    first_caller = make_caller(acme, Role.MEMBER)
    colleague = make_caller(acme, Role.MEMBER)
    stranger = make_caller(make_tenant("globex"), Role.MEMBER)
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}

    first = post_keypair(first_caller.client(), body, "shared-key")
    theirs = post_keypair(stranger.client(), body, "shared-key")
    same_tenant = post_keypair(colleague.client(), body, "shared-key")

    assert first.status_code == 201
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert theirs.json()["id"] != first.json()["id"]
    assert str(KeyPair.objects.get(pk=theirs.json()["id"]).tenant_id) == str(stranger.tenant.id)
    # The colleague's key is theirs too: not a replay of the first answer, but a real attempt
    # (refused because the name is taken in this tenant).
    assert same_tenant.status_code == 409
    assert same_tenant.json()["error"]["code"] == "already_exists"
    assert KeyPair.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 2


def test_a_refused_create_is_not_remembered(member, ssh_public_keys):
    services.quota_set(actor=SYSTEM, tenant=member.tenant, resource="keypairs", limit=0)
    client = member.client()
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}

    refused = post_keypair(client, body, "after-quota")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert not IdempotencyRecord.objects.exists()

    services.quota_set(actor=SYSTEM, tenant=member.tenant, resource="keypairs", limit=1)
    retried = post_keypair(client, body, "after-quota")

    assert retried.status_code == 201, retried.content
    assert "Idempotent-Replayed" not in retried
    assert KeyPair.objects.count() == 1
    assert post_keypair(client, body, "after-quota").json() == retried.json()


# ---- Concurrent retries --------------------------------------------------------------------


def http_post(url: str, token: str, body: dict[str, Any], key: str) -> tuple[int, Any, Any]:
    request = urllib.request.Request(  # noqa: S310 - the URL is the live test server's
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DESIGN §12)")
def test_concurrent_requests_with_one_key_create_one_resource(
    live_server, make_tenant, make_caller, ssh_public_keys
):
    caller = make_caller(make_tenant("acme"), Role.MEMBER)
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    parallel = 10
    barrier = threading.Barrier(parallel)

    def send(_: int) -> tuple[int, Any, Any]:
        barrier.wait(timeout=30)
        return http_post(f"{live_server.url}/api/v1/keypairs", caller.token, body, "together")

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        answers = list(pool.map(send, range(parallel)))

    assert [status for status, _, _ in answers] == [201] * parallel, answers
    assert len({json.dumps(body, sort_keys=True) for _, body, _ in answers}) == 1
    replayed = [headers.get("Idempotent-Replayed") for _, _, headers in answers]
    assert replayed.count(None) == 1  # one real answer, the others are its replays
    assert KeyPair.objects.count() == 1
    assert str(KeyPair.objects.get().pk) == answers[0][1]["id"]
    assert IdempotencyRecord.objects.count() == 1
    assert keypair_create_successes() == 1
