"""The OpenAPI 3 schema is generated from the code without warnings, and the browsable docs work
offline: Swagger UI is served by the project itself, never from a CDN."""

from __future__ import annotations

import io
import json
import re

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from tenants.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(make_tenant, make_caller) -> Client:
    """A tenant reader signed in (the schema and the docs are behind authentication)."""
    caller = make_caller(make_tenant("acme"), Role.READER)
    client = Client()
    client.force_login(caller.user)
    return client


@pytest.fixture
def schema(signed_in) -> dict:
    response = signed_in.get("/api/schema/")
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
