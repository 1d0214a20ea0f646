"""L4: deeply nested JSON is a 400 in the error shape, never a 500, for anonymous callers too."""

from __future__ import annotations

import pytest
from django.test import Client

from iaas.api.parsers import MAX_DEPTH, nesting_depth
from iaas.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_deeply_nested_body_is_a_400_not_a_500(opener):
    body = opener * 100_000  # ~400 KB, inside the 1 MiB body limit
    before = AuditEvent.objects.count()
    response = Client().post("/api/v1/auth/login", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert response.json()["error"]["code"] == "malformed_json"
    assert AuditEvent.objects.count() == before


def test_ordinary_nesting_still_parses(make_tenant, make_caller):
    caller = make_caller(make_tenant("acme"))
    response = caller.client().post(
        "/api/v1/keypairs", {"name": "x", "public_key": "not a key"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] != "malformed_json"


def test_nesting_depth_ignores_brackets_in_strings():
    assert nesting_depth(b'{"a": "[[[[' + b"[" * 200 + b'", "b": [1, [2]]}') == 3
    assert nesting_depth(b'"\\"[' + b"[" * 100 + b'"') == 0
    assert nesting_depth(b"[" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1
