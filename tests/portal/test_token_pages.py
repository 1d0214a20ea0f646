"""API tokens in the portal: the API's rules (tenants/api/tokens.py) — your own tokens only,
any role manages its own, a new token's role is at most yours, its secret shown once, and an
account bound to a second factor mints tokens only from a session that passed it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from iaas.models import AuditEvent
from tenants import services
from tenants import tokens as token_secrets
from tenants.models import ApiToken, Membership, Role
from tests.support.callers import SYSTEM
from tests.support.portal_client import portal_client


def _client(user: Any, *, verified: bool = False) -> Client:
    return portal_client(user, verified=verified)


def _create(client: Client, **fields: Any) -> Any:
    return client.post("/t/acme/tokens/new/", {"name": "ci", "role": "reader", **fields})


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


def test_the_list_shows_only_your_own_tokens_of_this_tenant(acme, make_tenant, make_caller):
    me = make_caller(acme, Role.MEMBER)
    colleague = make_caller(acme, Role.MEMBER)
    ApiToken.objects.filter(user=colleague.user).update(name="colleague-token")
    elsewhere = make_tenant("other")
    Membership.objects.create(user=me.user, tenant=elsewhere, role=Role.MEMBER)
    services.token_create(
        actor=SYSTEM, user=me.user, tenant=elsewhere, name="other-tenant-token",
        session_passed_mfa=True,
    )  # fmt: skip
    ApiToken.objects.filter(user=me.user, tenant=acme).update(name="my-token")

    page = _client(me.user).get("/t/acme/tokens/")

    body = page.content.decode()
    assert page.status_code == 200
    assert "my-token" in body
    assert "colleague-token" not in body
    assert "other-tenant-token" not in body


def test_a_reader_creates_a_token_and_sees_its_secret_once(acme, make_caller):
    reader = make_caller(acme, Role.READER)
    client = _client(reader.user)

    answer = _create(client, name="monitoring")

    assert answer.status_code == 201
    assert "no-store" in answer["Cache-Control"]
    token = ApiToken.objects.get(user=reader.user, name="monitoring")
    assert token.role == Role.READER
    secret = answer.context["secret"]
    parts = token_secrets.parse(secret)
    assert parts is not None
    assert token_secrets.matches(parts, token.secret_hash)
    assert secret in answer.content.decode()
    assert secret not in client.get("/t/acme/tokens/").content.decode()
    assert secret not in client.get(f"/t/acme/tokens/{token.pk}/revoke/").content.decode()
    assert AuditEvent.objects.filter(action="token.create", target_id=str(token.pk)).exists()


def test_a_token_cannot_be_given_a_role_above_yours(acme, make_caller):
    reader = make_caller(acme, Role.READER)
    count = ApiToken.objects.count()

    answer = _create(_client(reader.user), role="admin")

    assert answer.status_code == 400
    assert "Select a valid choice" in answer.content.decode()
    assert ApiToken.objects.count() == count


def test_an_expiry_too_far_away_is_refused_and_said(acme, make_caller, settings):
    member = make_caller(acme, Role.MEMBER)
    count = ApiToken.objects.count()
    too_far = timezone.localtime() + settings.TOKEN_MAX_LIFETIME + timedelta(days=2)

    answer = _create(_client(member.user), expires_at=too_far.strftime("%Y-%m-%dT%H:%M"))

    assert answer.status_code == 400
    assert "That expiry is too far away" in answer.content.decode()
    assert ApiToken.objects.count() == count


def test_an_expiry_in_the_past_is_refused(acme, make_caller):
    member = make_caller(acme, Role.MEMBER)
    count = ApiToken.objects.count()
    past = timezone.localtime() - timedelta(days=1)

    answer = _create(_client(member.user), expires_at=past.strftime("%Y-%m-%dT%H:%M"))

    assert answer.status_code == 400
    assert "Choose a date and time in the future." in answer.content.decode()
    assert ApiToken.objects.count() == count


def test_a_session_without_its_second_factor_mints_no_token(acme, make_caller, monkeypatch):
    """An account bound to MFA (an admin) whose session did not pass it: the page says so and
    links to the second factor, and the service refuses a POST anyway."""
    admin = make_caller(acme, Role.ADMIN)
    client = _client(admin.user, verified=True)
    # The portal's own gate sends an unverified bound session to enrolment before any tenant
    # page; here the token pages alone are told the session did not pass, to show that the
    # rule of the API (tenants.mfa.may_mint_tokens) holds in them too.
    monkeypatch.setattr("portal.views.tokens.session_verified", lambda request: False)
    count = ApiToken.objects.count()

    listing = client.get("/t/acme/tokens/").content.decode()
    answer = _create(client)

    assert "this session has not passed it" in listing
    assert 'href="/account/mfa/"' in listing
    assert 'href="/t/acme/tokens/new/"' not in listing
    assert answer.status_code == 400
    assert "Sign in again with your second factor" in answer.content.decode()
    assert ApiToken.objects.count() == count


def test_revoking_asks_first_then_revokes(acme, make_caller):
    member = make_caller(acme, Role.MEMBER)
    token = ApiToken.objects.get(user=member.user)
    client = _client(member.user)

    confirm = client.get(f"/t/acme/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert confirm.status_code == 200
    assert token.revoked_at is None

    answer = client.post(f"/t/acme/tokens/{token.pk}/revoke/")

    token.refresh_from_db()
    assert answer.status_code == 302
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoke", target_id=str(token.pk)).exists()
    assert "revoked" in client.get("/t/acme/tokens/").content.decode()


def test_someone_elses_token_is_a_404(acme, make_tenant, make_caller):
    me = make_caller(acme, Role.ADMIN)
    colleague = make_caller(acme, Role.MEMBER)
    stranger = make_caller(make_tenant("other"), Role.MEMBER)
    client = _client(me.user, verified=True)

    for other in (colleague, stranger):
        token = ApiToken.objects.get(user=other.user)
        assert client.get(f"/t/acme/tokens/{token.pk}/revoke/").status_code == 404
        assert client.post(f"/t/acme/tokens/{token.pk}/revoke/").status_code == 404
        token.refresh_from_db()
        assert token.revoked_at is None
    assert client.get("/t/other/tokens/").status_code == 404
