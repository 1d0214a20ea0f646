"""An API token's secret is shown once and then exists nowhere on our side (DESIGN §9): not in
later answers, not in any database column, not in any log line, even at DEBUG with every SQL
statement logged."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from iaas.logging import JsonFormatter
from tenants import tokens
from tenants.models import ApiToken, Role

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged anywhere, at DEBUG, through the project's JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


@pytest.fixture
def sql_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """DEBUG on the root logger and on django.db.backends, with every query logged (with its
    parameters), so a secret written to or looked up in the database would show here."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    previous = connection.force_debug_cursor
    connection.force_debug_cursor = True
    try:
        yield
    finally:
        connection.force_debug_cursor = previous


def database_text() -> str:
    """Every column of every row of every table, as text."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [
                column.name
                for column in connection.introspection.get_table_description(cursor, table)
            ]
            selected = ", ".join(f"CAST({connection.ops.quote_name(c)} AS TEXT)" for c in columns)
            cursor.execute(f"SELECT {selected} FROM {connection.ops.quote_name(table)}")  # noqa: S608
            chunks.extend(" ".join(str(v) for v in row) for row in cursor.fetchall())
    return "\n".join(chunks)


def response_text(response: Any) -> str:
    return response.content.decode()


def test_a_token_secret_is_shown_once_and_stored_nowhere(
    make_tenant, make_caller, caplog, json_log, sql_logged
):
    admin = make_caller(make_tenant("acme"), Role.ADMIN)
    client = admin.client()

    created = client.post(
        "/api/v1/tokens",
        {"name": "ci", "role": Role.MEMBER},
        format="json",
        HTTP_IDEMPOTENCY_KEY="token-ci-1",
    )

    assert created.status_code == 201, created.content
    full = created.json()["secret"]
    parts = tokens.parse(full)
    assert parts is not None
    assert parts.key_id == created.json()["key_id"]
    token = ApiToken.objects.get(pk=created.json()["id"])
    assert token.secret_hash == tokens.secret_hash(parts)
    assert token.role == Role.MEMBER

    # Never again: not on a retry, not in lists or details.
    replayed = client.post(
        "/api/v1/tokens",
        {"name": "ci", "role": Role.MEMBER},
        format="json",
        HTTP_IDEMPOTENCY_KEY="token-ci-1",
    )
    assert replayed.status_code == 201
    assert replayed["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == created.json()["id"]
    assert replayed.json()["secret"] is None
    listed = client.get("/api/v1/tokens")
    detail = client.get(f"/api/v1/tokens/{token.pk}")
    assert listed.status_code == detail.status_code == 200
    assert str(token.pk) in response_text(listed)
    assert "secret" not in detail.json()
    for later in (replayed, listed, detail):
        assert parts.secret not in response_text(later)

    # The token works; a wrong secret for the same key id is refused.
    bare = APIClient()
    used = bare.get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Bearer {full}")
    assert used.status_code == 200
    assert used.json()["your_role"] == Role.MEMBER
    wrong = f"{tokens.PREFIX}_{parts.key_id}_{parts.secret[:-4]}AAAA"
    refused = bare.get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Bearer {wrong}")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"

    # Nowhere in the database, though the dump does see the token's row.
    dump = database_text()
    assert token.secret_hash in dump
    assert parts.key_id in dump
    assert full not in dump
    assert parts.secret not in dump

    # Nowhere in the logs, though they did record the token's queries.
    captured = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert parts.key_id in captured
    assert json_log.getvalue()
    for text in (captured, json_log.getvalue()):
        assert full not in text
        assert parts.secret not in text
        assert wrong not in text


def test_the_stored_hash_is_what_authenticates(make_tenant, make_caller):
    """The stored SHA-256 is checked, not the key id alone: a token whose stored hash no
    longer matches stops working."""
    admin = make_caller(make_tenant("acme"), Role.ADMIN)
    client = admin.client()
    assert client.get("/api/v1/tenant").status_code == 200

    parts = tokens.parse(admin.token)
    assert parts is not None
    ApiToken.objects.filter(key_id=parts.key_id).update(
        secret_hash=tokens.secret_hash(tokens.TokenParts(parts.key_id, "x" * 43))
    )

    response = client.get("/api/v1/tenant")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
