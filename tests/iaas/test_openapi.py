"""The OpenAPI 3 schema is generated from the code without warnings, and the browsable docs work
offline: Swagger UI is served by the project itself, never from a CDN."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from tenants.models import Role
from tests import factories
from tests.support.callers import caller_maker

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(make_tenant, make_caller) -> Client:
    """A tenant reader signed in (the schema and the docs are behind authentication)."""
    caller = make_caller(make_tenant("acme"), Role.READER)
    client = Client()
    client.force_login(caller.user)
    return client


@pytest.fixture(scope="module")
def schema(django_db_setup: None, django_db_blocker: Any) -> dict:
    """The schema as a signed-in reader gets it, generated once for the module (about 1.5 s
    each time; it depends on the code, not on the database's rows, which are rolled back)."""
    with django_db_blocker.unblock(), transaction.atomic():
        caller = caller_maker()(factories.tenant("acme"), Role.READER)
        client = Client()
        client.force_login(caller.user)
        response = client.get("/api/schema/")
        transaction.set_rollback(True)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    return yaml.safe_load(response.content)


def test_schema_is_openapi_3_and_lists_the_keypair_endpoints(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Andromède API"
    keypairs = schema["paths"]["/api/v1/keypairs"]
    assert {"get", "post"} <= set(keypairs)
    assert {"get", "delete"} <= set(schema["paths"]["/api/v1/keypairs/{id}"])
    parameters = {p["name"] for p in keypairs["get"]["parameters"]}
    assert {"cursor", "limit", "name", "fingerprint", "key_type"} <= parameters


def test_keypair_import_request_and_response_are_described(schema):
    post = schema["paths"]["/api/v1/keypairs"]["post"]
    request_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = schema["components"]["schemas"][request_ref.rsplit("/", 1)[1]]
    assert set(request["required"]) == {"name", "public_key"}
    assert set(request["properties"]) == {"name", "public_key"}
    assert "201" in post["responses"]
    response_ref = post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    response = schema["components"]["schemas"][response_ref.rsplit("/", 1)[1]]
    assert {"id", "fingerprint", "bits", "key_type"} <= set(response["properties"])


def test_bearer_tokens_are_the_documented_security_scheme(schema):
    schemes = schema["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["bearerToken"].items()
    security = schema["paths"]["/api/v1/keypairs"]["get"]["security"]
    assert {"bearerToken": []} in security


def test_anonymous_callers_get_neither_the_schema_nor_the_docs():
    """Review L2: the schema described the operators' API to anyone."""
    for path in ("/api/schema/", "/api/schema/?format=json", "/api/docs/"):
        response = Client().get(path)
        assert response.status_code == 401, path
        assert b"/api/v1/admin" not in response.content, path


def test_a_bearer_token_reads_the_schema(make_tenant, make_caller):
    caller = make_caller(make_tenant("acme"), Role.READER)
    response = caller.client().get("/api/schema/?format=json")
    assert response.status_code == 200
    assert "/api/v1/keypairs" in json.loads(response.content)["paths"]


def test_schema_as_json(schema, signed_in):
    response = signed_in.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert json.loads(response.content) == schema


def test_schema_generation_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(out), stdout=io.StringIO()
    )
    assert "/api/v1/keypairs" in yaml.safe_load(out.read_text())["paths"]


def test_docs_page_uses_the_locally_served_swagger_ui(signed_in):
    client = signed_in
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "cdn." not in html
    assert "unpkg" not in html
    assert "jsdelivr" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert all(not asset.startswith(("http:", "https:", "//")) for asset in assets), assets
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert any(s.endswith("swagger-ui-bundle.js") for s in scripts), scripts
    for asset in assets:
        if not asset.startswith("/static/"):
            continue
        served = client.get(asset)
        assert served.status_code == 200, asset
        body = served.getvalue()
        assert body, asset
        if asset.endswith(".js"):
            assert len(body) > 100_000, asset  # the real bundle, not a stub
    assert "/api/schema/" in html


# ---- Review item 12: the schema tells the truth (tests/test_api_fuzz.py holds the API to it) --

METHODS = {"get", "post", "put", "patch", "delete"}


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def component(schema, ref: str) -> dict:
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_the_error_shape_is_a_component(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    body = component(schema, error["properties"]["error"]["$ref"])
    assert set(body["required"]) == {"code", "message", "details"}
    assert body["properties"]["details"]["type"] == "object"


def test_every_operation_documents_the_errors_it_can_answer(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        signed_in = any(operation.get("security", [{}]))
        expected = {"400", "429", "503"}
        if signed_in:
            expected |= {"401", "403"}
        if "{" in path:
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"413", "415"}
        if signed_in and method != "get":
            expected.add("409")
        assert expected <= set(responses), (method, path, sorted(responses))
        for status in expected:
            content = responses[status]["content"]
            assert content == {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }
        assert "Retry-After" in responses["429"]["headers"], (method, path)
        assert "Retry-After" in responses["503"]["headers"], (method, path)


def test_sign_in_documents_wrong_credentials_and_lockout(schema):
    for path in ("/api/v1/auth/login", "/api/v1/admin/auth/login"):
        responses = schema["paths"][path]["post"]["responses"]
        assert {"200", "400", "401", "429"} <= set(responses)
        assert "$ref" in responses["200"]["content"]["application/json"]["schema"]


def test_quotas_are_documented_as_the_object_they_are(schema):
    ok = schema["paths"]["/api/v1/quotas"]["get"]["responses"]["200"]
    quotas = component(schema, ok["content"]["application/json"]["schema"]["$ref"])
    assert quotas["type"] == "object"
    assert quotas["properties"]["results"]["type"] == "array"


def test_the_audit_export_is_documented_as_json_lines(schema):
    for path in ("/api/v1/audit-events/export", "/api/v1/admin/audit-events/export"):
        ok = schema["paths"][path]["get"]["responses"]["200"]
        assert set(ok["content"]) == {"application/x-ndjson"}


def test_a_flavor_named_a1_tiny_fits_the_schema(schema):
    request = schema["paths"]["/api/v1/admin/flavors"]["post"]["requestBody"]
    body = component(schema, request["content"]["application/json"]["schema"]["$ref"])
    flavor = schema["components"]["schemas"]["Flavor"]
    assert re.match(body["properties"]["name"]["pattern"], "a1.tiny")
    assert not re.match(body["properties"]["name"]["pattern"], "a1 tiny")
    assert re.match(flavor["properties"]["name"].get("pattern", "."), "a1.tiny")


def test_instance_create_and_delete_are_documented_as_accepted(schema):
    create = schema["paths"]["/api/v1/instances"]["post"]["responses"]["202"]
    accepted = component(schema, create["content"]["application/json"]["schema"]["$ref"])
    assert {"instance", "operation"} <= set(accepted["properties"])
    delete = schema["paths"]["/api/v1/instances/{id}"]["delete"]["responses"]
    assert "202" in delete
    assert "204" not in delete


def test_creates_document_the_idempotency_key_header(schema):
    for path in ("/api/v1/keypairs", "/api/v1/instances", "/api/v1/instances/{id}/snapshot"):
        parameters = schema["paths"][path]["post"]["parameters"]
        headers = {p["name"] for p in parameters if p["in"] == "header"}
        assert headers == {"Idempotency-Key"}, path


def test_the_audit_export_documents_the_filters_it_takes(schema):
    for path, extra in (("/api/v1/audit-events/export", set()),
                        ("/api/v1/admin/audit-events/export", {"tenant"})):  # fmt: skip
        parameters = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert parameters == {"action", "outcome", "created_after", "created_before"} | extra


def test_a_host_not_yet_confirmed_has_a_blank_domain_type_the_schema_allows(schema):
    """The fuzzer's find: hosts awaiting confirmation answer `"domain_type": ""`."""
    domain_type = schema["components"]["schemas"]["Host"]["properties"]["domain_type"]
    allowed = [component(schema, choice["$ref"])["enum"] for choice in domain_type["oneOf"]]
    assert [""] in allowed
