"""The keypair API as a tenant sees it: import, list, read, delete, roles, quota and
Idempotency-Key. Bad input is covered in tests/iaas/test_errors_and_bad_input.py."""

from __future__ import annotations

import pytest

from compute.models import KeyPair
from compute.sshkeys import parse_public_key
from iaas.audit import Actor
from iaas.models import AuditEvent, IdempotencyRecord
from tenants import services

pytestmark = [pytest.mark.django_db]

URL = "/api/v1/keypairs"


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def member(tenant, make_caller):
    return make_caller(tenant, "member")


def test_member_imports_lists_and_reads_a_keypair(member, ssh_public_keys):
    client = member.client()
    text = ssh_public_keys["ed25519"]
    created = client.post(URL, {"name": "laptop", "public_key": f"  {text}\n"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    parsed = parse_public_key(text)
    assert body["name"] == "laptop"
    assert body["key_type"] == "ssh-ed25519"
    assert body["bits"] == 256
    assert body["fingerprint"] == parsed.fingerprint
    assert body["public_key"] == text  # normalised: surrounding whitespace dropped
    assert set(body) == {
        "id",
        "name",
        "key_type",
        "bits",
        "fingerprint",
        "public_key",
        "created_at",
    }

    listed = client.get(URL)
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()["results"]] == ["laptop"]

    read = client.get(f"{URL}/{body['id']}")
    assert read.status_code == 200
    assert read.json() == body

    keypair = KeyPair.objects.get()
    assert keypair.tenant == member.tenant
    assert keypair.created_by_id == member.user.pk


def test_delete_removes_the_keypair_and_is_audited(member, ssh_public_keys):
    client = member.client()
    created = client.post(
        URL, {"name": "old", "public_key": ssh_public_keys["ecdsa"]}, format="json"
    ).json()
    deleted = client.delete(f"{URL}/{created['id']}")
    assert deleted.status_code == 204
    assert not KeyPair.objects.exists()
    assert client.get(f"{URL}/{created['id']}").status_code == 404
    event = AuditEvent.objects.filter(action="keypair.delete").get()
    assert event.target_id == created["id"]
    assert event.details == {"fingerprint": created["fingerprint"]}
    # deleting again: nothing left to delete
    assert client.delete(f"{URL}/{created['id']}").status_code == 404


def test_reader_can_list_but_not_import_or_delete(tenant, member, make_caller, ssh_public_keys):
    member.client().post(
        URL, {"name": "kept", "public_key": ssh_public_keys["ed25519"]}, format="json"
    )
    keypair = KeyPair.objects.get()
    reader = make_caller(tenant, "reader").client()
    assert [k["name"] for k in reader.get(URL).json()["results"]] == ["kept"]

    refused = reader.post(URL, {"name": "x", "public_key": ssh_public_keys["ecdsa"]}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert refused.json()["error"]["details"] == {"required_role": "member", "your_role": "reader"}
    assert reader.delete(f"{URL}/{keypair.pk}").status_code == 403
    assert list(KeyPair.objects.values_list("name", flat=True)) == ["kept"]


def test_another_tenants_keypair_is_not_found(member, make_tenant, make_caller, ssh_public_keys):
    other = make_caller(make_tenant("globex"), "admin").client()
    theirs = other.post(
        URL, {"name": "theirs", "public_key": ssh_public_keys["ed25519"]}, format="json"
    ).json()
    client = member.client()
    assert client.get(URL).json()["results"] == []
    for response in (client.get(f"{URL}/{theirs['id']}"), client.delete(f"{URL}/{theirs['id']}")):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert KeyPair.objects.count() == 1


def test_same_name_in_two_tenants_is_allowed(member, make_tenant, make_caller, ssh_public_keys):
    other = make_caller(make_tenant("globex"), "member").client()
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    assert member.client().post(URL, body, format="json").status_code == 201
    assert other.post(URL, body, format="json").status_code == 201
    assert KeyPair.objects.filter(name="laptop").count() == 2


def test_quota_exceeded_is_403_and_creates_nothing(tenant, member, ssh_public_keys):
    services.quota_set(actor=Actor.system("tests"), tenant=tenant, resource="keypairs", limit=1)
    client = member.client()
    first = client.post(
        URL, {"name": "one", "public_key": ssh_public_keys["ed25519"]}, format="json"
    )
    assert first.status_code == 201
    second = client.post(
        URL, {"name": "two", "public_key": ssh_public_keys["ecdsa"]}, format="json"
    )
    assert second.status_code == 403
    assert second.json()["error"]["code"] == "quota_exceeded"
    assert list(KeyPair.objects.values_list("name", flat=True)) == ["one"]


def test_idempotency_key_replays_the_first_answer(member, ssh_public_keys):
    client = member.client()
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    first = client.post(URL, body, format="json", headers={"Idempotency-Key": "k-1"})
    again = client.post(URL, body, format="json", headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert KeyPair.objects.count() == 1
    assert AuditEvent.objects.filter(action="keypair.create").count() == 1

    reused = client.post(
        URL,
        {"name": "other", "public_key": ssh_public_keys["ecdsa"]},
        format="json",
        headers={"Idempotency-Key": "k-1"},
    )
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert KeyPair.objects.count() == 1


def test_a_refused_create_is_not_remembered_by_its_idempotency_key(member, ssh_public_keys):
    client = member.client()
    bad = {"name": "laptop", "public_key": ssh_public_keys["rsa1024"]}
    refused = client.post(URL, bad, format="json", headers={"Idempotency-Key": "k-2"})
    assert refused.status_code == 400
    assert not IdempotencyRecord.objects.exists()
    good = {"name": "laptop", "public_key": ssh_public_keys["rsa2048"]}
    created = client.post(URL, good, format="json", headers={"Idempotency-Key": "k-2"})
    assert created.status_code == 201
    assert created.json()["bits"] == 2048


def test_malformed_idempotency_key_is_refused(member, ssh_public_keys):
    response = member.client().post(
        URL,
        {"name": "laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
        headers={"Idempotency-Key": "has spaces in it"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert not KeyPair.objects.exists()


def test_unauthenticated_calls_are_refused(ssh_public_keys, tenant):
    from rest_framework.test import APIClient

    client = APIClient()
    listed = client.get(URL)
    assert listed.status_code == 401
    assert listed.json()["error"]["code"] == "not_authenticated"
    created = client.post(
        URL, {"name": "x", "public_key": ssh_public_keys["ed25519"]}, format="json"
    )
    assert created.status_code == 401
    bogus = APIClient()
    bogus.credentials(HTTP_AUTHORIZATION="Bearer andr_000000000000_" + "x" * 43)
    assert bogus.get(URL).json()["error"]["code"] == "invalid_token"
    assert not KeyPair.objects.exists()
