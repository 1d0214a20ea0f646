import pytest

pytestmark = pytest.mark.django_db


def test_member_imports_and_lists_a_keypair(make_tenant, make_caller, ssh_public_keys):
    tenant = make_tenant("acme")
    caller = make_caller(tenant, "member")
    client = caller.client()
    created = client.post(
        "/api/v1/keypairs",
        {"name": "laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    listed = client.get("/api/v1/keypairs")
    assert [k["name"] for k in listed.json()["results"]] == ["laptop"]
