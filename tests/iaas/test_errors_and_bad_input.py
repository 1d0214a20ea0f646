"""Bad input gets one error shape with a precise code, never a 500, and changes nothing.

{"error": {"code": "...", "message": "...", "details": {...}}}
"""

from __future__ import annotations

import base64
import json
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.test import override_settings

from compute.models import KeyPair
from iaas.models import AuditEvent, IdempotencyRecord
from tenants.models import ApiToken, Membership, Tenant

pytestmark = [pytest.mark.django_db]

URL = "/api/v1/keypairs"


def error_of(response, status: int, code: str) -> dict:
    """The error of `response`, after checking it has exactly the documented shape."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    return error


def resource_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (KeyPair, Tenant, Membership, ApiToken, IdempotencyRecord)
    }


@pytest.fixture
def member(make_tenant, make_caller):
    return make_caller(make_tenant("acme"), "member")


@pytest.fixture
def client(member):
    return member.client()


@pytest.fixture
def unchanged(client):
    """Asserts at the end of the test that no resource row was created or removed."""
    before = resource_counts()
    yield
    assert resource_counts() == before


def post_raw(client, body: bytes, content_type: str = "application/json", **extra):
    return client.generic("POST", URL, body, content_type=content_type, **extra)


# ---- malformed and mis-shaped bodies -------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"name": "a",', b"{'name': 'a'}", b"nul", b"\xff\xfe{"])
def test_malformed_json(client, unchanged, body):
    error_of(post_raw(client, body), 400, "malformed_json")


@pytest.mark.parametrize("body", [[], ["name", "public_key"], "a string", 42, True, None])
def test_a_body_that_is_not_an_object_is_invalid(client, unchanged, body):
    error = error_of(post_raw(client, json.dumps(body).encode()), 400, "invalid")
    assert "non_field_errors" in error["details"]


def test_unknown_field_is_named(client, unchanged, ssh_public_keys):
    response = client.post(
        URL, {"name": "laptop", "pubic_key": ssh_public_keys["ed25519"]}, format="json"
    )
    error = error_of(response, 400, "unknown_field")
    assert error["details"] == {"pubic_key": ["Unknown field."]}


def test_read_only_fields_are_unknown_as_input(client, unchanged, ssh_public_keys):
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"], "fingerprint": "SHA256:x"}
    error = error_of(client.post(URL, body, format="json"), 400, "unknown_field")
    assert set(error["details"]) == {"fingerprint"}


@pytest.mark.parametrize("name", [123, True, 1.5, ["laptop"], {"a": 1}, None])
def test_mistyped_name_is_invalid_with_details(client, unchanged, ssh_public_keys, name):
    body = {"name": name, "public_key": ssh_public_keys["ed25519"]}
    error = error_of(client.post(URL, body, format="json"), 400, "invalid")
    assert set(error["details"]) == {"name"}


def test_mistyped_public_key_is_invalid_with_details(client, unchanged):
    error = error_of(
        client.post(URL, {"name": "k", "public_key": 5}, format="json"), 400, "invalid"
    )
    assert set(error["details"]) == {"public_key"}


@pytest.mark.parametrize(
    ("body", "missing"),
    [({}, {"name", "public_key"}), ({"name": "laptop"}, {"public_key"})],
)
def test_missing_fields_are_named(client, unchanged, body, missing):
    error = error_of(client.post(URL, body, format="json"), 400, "invalid")
    assert set(error["details"]) == missing
    for field in missing:
        assert error["details"][field] == ["This field is required."]


# ---- size, content type, URL and method ----------------------------------------------------


def test_body_over_the_limit_is_413_and_at_the_limit_is_accepted(client, ssh_public_keys):
    body = json.dumps({"name": "laptop", "public_key": ssh_public_keys["ed25519"]}).encode()
    with override_settings(API_MAX_BODY_BYTES=len(body) - 1):
        before = resource_counts()
        error = error_of(post_raw(client, body), 413, "request_too_large")
        assert error["details"] == {"limit_bytes": len(body) - 1}
        assert resource_counts() == before
    with override_settings(API_MAX_BODY_BYTES=len(body)):
        assert post_raw(client, body).status_code == 201


def test_a_huge_declared_length_is_refused_before_reading(client, unchanged):
    # The middleware answers from Content-Length alone; the body is never read.
    response = post_raw(client, b"{}", CONTENT_LENGTH=str(10**12))
    error_of(response, 413, "request_too_large")


def test_non_numeric_content_length_is_400(client, unchanged):
    error_of(post_raw(client, b"{}", CONTENT_LENGTH="12abc"), 400, "invalid_content_length")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"name=laptop&public_key=ssh-ed25519+AAAA"),
        ("text/plain", b'{"name": "laptop"}'),
        ("multipart/form-data; boundary=xyz", b"--xyz--\r\n"),
        ("application/xml", b"<keypair/>"),
    ],
)
def test_wrong_content_type_is_415(client, unchanged, content_type, body):
    error_of(post_raw(client, body, content_type=content_type), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v1/keypairs/", "/api/v2/keypairs", "/api/", "/api/v1/admin/x"]
)
def test_unknown_api_url_is_a_json_404(client, path):
    error_of(client.get(path), 404, "not_found")


def test_unknown_api_url_is_a_json_404_even_without_credentials():
    from rest_framework.test import APIClient

    error_of(APIClient().get("/api/v1/nope"), 404, "not_found")


@pytest.mark.parametrize(
    "bad_id", ["123", "not-a-uuid", "0" * 37, "0" * 36, "-" * 36, "' OR 1=1 --", "%00"]
)
@pytest.mark.parametrize("method", ["get", "delete"])
def test_non_uuid_id_is_404(client, unchanged, method, bad_id):
    response = getattr(client, method)(f"{URL}/{bad_id}")
    error_of(response, 404, "not_found")


def test_unknown_uuid_is_404(client, unchanged):
    error_of(client.get(f"{URL}/00000000-0000-0000-0000-000000000000"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", URL, {"GET", "POST"}),
        ("patch", URL, {"GET", "POST"}),
        ("delete", URL, {"GET", "POST"}),
        ("put", f"{URL}/00000000-0000-0000-0000-000000000000", {"GET", "DELETE"}),
        ("post", f"{URL}/00000000-0000-0000-0000-000000000000", {"GET", "DELETE"}),
    ],
)
def test_wrong_method_is_405(client, unchanged, method, path, allowed):
    response = getattr(client, method)(path, {}, format="json")
    error_of(response, 405, "method_not_allowed")
    assert allowed <= {m.strip() for m in response["Allow"].split(",")}
    assert method.upper() not in response["Allow"]


# ---- public keys and names -----------------------------------------------------------------


def _dsa_like() -> str:
    raw = struct.pack(">I", 7) + b"ssh-dss" + b"\x00\x00\x00\x81" + b"\x01" * 129
    return f"ssh-dss {base64.b64encode(raw).decode()} old@host"


def _private_pem() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


BAD_KEYS = {
    "dsa": lambda k: _dsa_like(),
    "rsa1024": lambda k: k["rsa1024"],
    "garbage_base64": lambda k: "ssh-ed25519 %%%not-base64%%% me@host",
    "type_mismatch": lambda k: "ssh-ed25519 " + k["rsa2048"].split()[1],
    "private_key_pem": lambda k: _private_pem(),
    "two_lines": lambda k: k["ed25519"] + "\n" + k["ecdsa"],
    "just_words": lambda k: "hello world",
}


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_bad_public_keys_are_refused(client, unchanged, ssh_public_keys, case):
    body = {"name": "laptop", "public_key": BAD_KEYS[case](ssh_public_keys)}
    error = error_of(client.post(URL, body, format="json"), 400, "invalid_public_key")
    assert len(error["message"]) > 10  # says why


def test_a_refused_import_is_audited_as_refused(client, member, unchanged, ssh_public_keys):
    body = {"name": "laptop", "public_key": ssh_public_keys["rsa1024"]}
    error_of(client.post(URL, body, format="json"), 400, "invalid_public_key")
    event = AuditEvent.objects.filter(action="keypair.create").get()
    assert event.outcome == "refused"
    assert event.actor_id == member.user.pk
    assert event.tenant_id == member.tenant.pk
    assert event.details["code"] == "invalid_public_key"
    assert event.details["status"] == 400


@pytest.mark.parametrize(
    "name",
    ["", " ", "-laptop", ".hidden", "has space", "a/b", "a\nb", "émile", "x" * 65, "a;drop"],
)
def test_bad_keypair_names_are_refused(client, unchanged, ssh_public_keys, name):
    body = {"name": name, "public_key": ssh_public_keys["ed25519"]}
    error = error_of(client.post(URL, body, format="json"), 400, "invalid")
    assert "name" in error["details"]


@pytest.mark.parametrize("name", ["a", "Laptop-2024", "alice@work", "k.v_1", "x" * 64])
def test_good_keypair_names_are_accepted(client, ssh_public_keys, name):
    body = {"name": name, "public_key": ssh_public_keys["ed25519"]}
    response = client.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == name


def test_duplicate_keypair_name_is_409(client, ssh_public_keys):
    first = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    assert client.post(URL, first, format="json").status_code == 201
    before = resource_counts()
    second = {"name": "laptop", "public_key": ssh_public_keys["ecdsa"]}
    error = error_of(client.post(URL, second, format="json"), 409, "already_exists")
    assert "laptop" in error["message"]
    assert resource_counts() == before
    assert KeyPair.objects.get().key_type == "ssh-ed25519"
