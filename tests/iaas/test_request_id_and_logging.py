"""Every response carries X-Request-Id; the same id is in the JSON log lines and the audit log,
so one id ties a user's report to what the platform did."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.test import Client, override_settings

from iaas.logging import JsonFormatter, RedactSecretsFilter, RequestIdFilter
from iaas.models import AuditEvent
from iaas.request_context import reset_request_id, set_request_id

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hasher")]

GENERATED = re.compile(r"^req-[0-9a-f]{32}$")


@pytest.fixture
def member(make_tenant, make_caller):
    return make_caller(make_tenant("acme"), "member")


@pytest.fixture
def json_log():
    """Log lines as the configured console handler writes them (JSON formatter, request-id and
    redaction filters), captured from the root logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactSecretsFilter())
    root = logging.getLogger()
    root.addHandler(handler)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    try:
        yield lines
    finally:
        root.removeHandler(handler)


def test_the_configured_console_handler_writes_json_with_request_ids():
    handlers = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert handlers, "settings.LOGGING must give the root logger the JSON formatter"
    filters = {type(f) for f in handlers[0].filters}
    assert {RequestIdFilter, RedactSecretsFilter} <= filters


def _responses(member, ssh_public_keys):
    api = member.client()
    anonymous = Client()
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    return {
        "api list": api.get("/api/v1/keypairs"),
        "api create": api.post("/api/v1/keypairs", body, format="json"),
        "api 400": api.post("/api/v1/keypairs", {}, format="json"),
        "api 401": anonymous.get("/api/v1/keypairs"),
        "api 404": api.get("/api/v1/nope"),
        "api 405": api.put("/api/v1/keypairs", {}, format="json"),
        "healthz": anonymous.get("/healthz"),
        "readyz": anonymous.get("/readyz"),
        "admin redirect": anonymous.get("/admin/"),
        "admin login": anonymous.get("/admin/login/"),
        "portal login": anonymous.get("/login/"),
        "schema": anonymous.get("/api/schema/"),
        "non-api 404": anonymous.get("/no/such/page"),
    }


def test_every_response_has_a_request_id(member, ssh_public_keys):
    responses = _responses(member, ssh_public_keys)
    assert responses["api create"].status_code == 201
    assert responses["api 401"].status_code == 401
    assert responses["non-api 404"].status_code == 404
    ids = {}
    for name, response in responses.items():
        assert response.has_header("X-Request-Id"), name
        ids[name] = response["X-Request-Id"]
        assert GENERATED.match(ids[name]), (name, ids[name])
    assert len(set(ids.values())) == len(ids), "each request gets its own id"


def test_a_too_large_body_refused_by_middleware_still_has_a_request_id(member):
    with override_settings(API_MAX_BODY_BYTES=10):
        response = member.client().post(
            "/api/v1/keypairs", {"name": "long enough"}, format="json", HTTP_X_REQUEST_ID="big-1234"
        )
    assert response.status_code == 413
    assert response["X-Request-Id"] == "big-1234"


@pytest.mark.parametrize(
    "client_id",
    [
        "trace-0001",
        "0123456789abcdef0123456789abcdef",
        "a:b.c_d-e",
        "x" * 128,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ],
)
def test_a_well_formed_client_id_is_echoed(member, client_id):
    for response in (
        member.client().get("/api/v1/keypairs", HTTP_X_REQUEST_ID=client_id),
        member.client().get("/api/v1/nope", HTTP_X_REQUEST_ID=client_id),
        Client().get("/healthz", HTTP_X_REQUEST_ID=client_id),
    ):
        assert response["X-Request-Id"] == client_id


@pytest.mark.parametrize(
    "client_id",
    [
        "has spaces in it",
        "line\nbreak-0001",
        "header\r\nX-Evil: 1",
        "x" * 129,
        "short",
        "",
        "emoji-🚀-00001",
        "semi;colon;0001",
        "quote\"d'0001",
    ],
)
def test_a_malformed_client_id_is_replaced(member, client_id):
    response = member.client().get("/api/v1/keypairs", HTTP_X_REQUEST_ID=client_id)
    assert response.status_code == 200
    assert response["X-Request-Id"] != client_id
    assert GENERATED.match(response["X-Request-Id"])


def test_the_request_id_is_in_the_json_log_line_of_a_refused_request(member, json_log):
    response = member.client().get("/api/v1/nope", HTTP_X_REQUEST_ID="trace-log-0001")
    assert response.status_code == 404
    lines = [line for line in json_log() if line["logger"] == "django.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "trace-log-0001"
    assert line["level"] == "WARNING"
    assert "/api/v1/nope" in line["message"]
    assert line["status_code"] == 404


def test_an_unexpected_error_answers_in_the_error_shape_and_logs_the_traceback_with_the_id(
    member, json_log, monkeypatch
):
    def broken(tenant):
        raise RuntimeError("the database caught fire")

    monkeypatch.setattr("compute.selectors.keypair_list", broken)
    response = member.client().get("/api/v1/keypairs", HTTP_X_REQUEST_ID="trace-boom-01")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "fire" not in response.content.decode()  # no internals leak to the caller
    assert response["X-Request-Id"] == "trace-boom-01"
    errors = [line for line in json_log() if line["level"] == "ERROR"]
    assert errors
    assert all(line["request_id"] == "trace-boom-01" for line in errors)
    assert any(
        "RuntimeError: the database caught fire" in line.get("exception", "") for line in errors
    )


def test_json_formatter_fields_and_extra():
    record = logging.LogRecord(
        "andromede.test", logging.INFO, __file__, 1, "hello %s", ("you",), None
    )
    record.host = "hv-1"
    record.vcpus = 4
    token = set_request_id("req-from-context")
    try:
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        reset_request_id(token)
    assert line["message"] == "hello you"
    assert line["level"] == "INFO"
    assert line["logger"] == "andromede.test"
    assert line["request_id"] == "req-from-context"
    assert line["host"] == "hv-1"
    assert line["vcpus"] == 4
    assert "time" in line


def test_tokens_never_reach_the_log(json_log):
    secret = "andr_0123456789ab_S3cretS3cretS3cretS3cretS3cret"
    logging.getLogger("andromede.test").warning("client sent Authorization: Bearer %s", secret)
    logging.getLogger("andromede.test").warning("raw %s", secret)
    text = json.dumps(json_log())
    assert "S3cret" not in text
    assert text.count("[redacted]") >= 2


def test_the_request_id_is_in_the_audit_event_of_a_write(member, ssh_public_keys):
    client = member.client()
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    created = client.post("/api/v1/keypairs", body, format="json", HTTP_X_REQUEST_ID="trace-w-0001")
    assert created.status_code == 201
    event = AuditEvent.objects.get(action="keypair.create", outcome="success")
    assert event.request_id == "trace-w-0001"

    refused = client.post("/api/v1/keypairs", body, format="json")  # same name: 409
    assert refused.status_code == 409
    event = AuditEvent.objects.get(action="keypair.create", outcome="refused")
    assert event.request_id == refused["X-Request-Id"]
    assert GENERATED.match(event.request_id)


def test_no_request_id_leaks_into_work_outside_a_request(member, ssh_public_keys):
    member.client().post(
        "/api/v1/keypairs",
        {"name": "laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
        HTTP_X_REQUEST_ID="trace-done-01",
    )
    from iaas.audit import Actor, audit_record

    event = audit_record(actor=Actor.system("tests"), action="test.outside")
    assert event.request_id == ""
