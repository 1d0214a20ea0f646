"""M1: anonymous authentication noise (malformed or unknown bearer tokens, sign-ins refused by a
lockout) is counted and summarised once a minute, never written as one audit event each;
refusals of real tokens are still audited one by one."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F, Sum
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from iaas.audit.verify import verify_chain
from iaas.models import AuditEvent
from tenants import auth_noise, services
from tenants.models import AuthNoise
from tests.support.callers import PASSWORD, SYSTEM

pytestmark = [pytest.mark.django_db]


def noise_total() -> int:
    return AuthNoise.objects.aggregate(total=Sum("count"))["total"] or 0


def minutes_pass() -> None:
    AuthNoise.objects.update(minute=F("minute") - timedelta(minutes=2))


@pytest.fixture
def captured_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("tenants.auth_noise").addHandler(handler)
    try:
        yield stream
    finally:
        logging.getLogger("tenants.auth_noise").removeHandler(handler)


def test_fifty_bogus_bearer_tokens_write_no_audit_event_then_one_summary(captured_log):
    before = AuditEvent.objects.count()
    attacker = APIClient(REMOTE_ADDR="192.0.2.7")
    for i in range(25):
        assert (
            attacker.get("/api/v1/keypairs", HTTP_AUTHORIZATION=f"Bearer x{i}").status_code == 401
        )
        unknown = f"andr_{'0' * 12}_{'A' * 43}"  # well formed, names no token
        assert attacker.get("/api/v1/", HTTP_AUTHORIZATION=f"Bearer {unknown}").status_code == 401

    assert AuditEvent.objects.count() == before
    assert noise_total() == 50
    assert captured_log.getvalue().count("authentication refused: unknown_token") == 50
    assert "x1" not in captured_log.getvalue()

    assert auth_noise.summarise() == 0  # the minute is not over yet
    minutes_pass()
    assert auth_noise.summarise() == 50
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert len(events) == 1
    assert (events[0].action, events[0].outcome) == ("auth.noise", "refused")
    assert events[0].details["total"] == 50
    assert events[0].details["by_kind"] == {"unknown_token": 50}
    assert events[0].details["top_sources"] == [["192.0.2.7", 50]]
    assert not AuthNoise.objects.exists()
    assert auth_noise.summarise() == 0
    assert AuditEvent.objects.count() == before + 1
    assert verify_chain().ok


def test_a_revoked_token_is_still_audited_each_time(make_tenant, make_caller):
    caller = make_caller(make_tenant("acme"))
    token = services.token_revoke(
        actor=SYSTEM, token=caller.user.api_tokens.get(tenant=caller.tenant)
    )
    before = AuditEvent.objects.count()
    for _ in range(3):
        assert caller.client().get("/api/v1/keypairs").status_code == 401
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.action, e.credential) for e in events] == [
        ("auth.token", f"token:{token.key_id}")
    ] * 3
    assert noise_total() == 0


def test_attempts_on_a_locked_username_are_counted_not_audited(make_tenant, make_caller):
    username = make_caller(make_tenant("acme")).user.username
    client = Client()
    before = AuditEvent.objects.count()
    for _ in range(settings.SIGNIN_MAX_FAILURES):
        client.post(
            "/api/v1/auth/login",
            {"username": username, "password": "wrong-wrong-wrong"},
            content_type="application/json",
        )
    for _ in range(10):
        response = client.post(
            "/api/v1/auth/login",
            {"username": username, "password": PASSWORD},
            content_type="application/json",
        )
        assert response.status_code == 429
    assert AuditEvent.objects.count() == before + settings.SIGNIN_MAX_FAILURES
    assert AuthNoise.objects.get().count == 10
    assert AuthNoise.objects.get().kind == "locked_out_signin"
    assert auth_noise.summarise(now=timezone.now() + timedelta(minutes=1)) == 10
