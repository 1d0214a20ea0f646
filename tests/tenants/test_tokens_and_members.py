"""Tokens (role ceiling, expiry, revocation, last use) and member management, through the API
as a tenant admin and as an operator would use them (DESIGN §9)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from iaas.audit import Actor
from iaas.models import AuditEvent
from tenants import services
from tenants.models import ApiToken, Membership, Quota, Role
from tests.support.mfa import sign_in_verified

pytestmark = [pytest.mark.django_db]

User = get_user_model()
SYSTEM = Actor.system("tests")


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]


def iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


# ---- Tokens --------------------------------------------------------------------------------


def test_a_token_made_with_a_reader_token_is_at_most_reader_even_for_an_admin(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    _, reader_secret = services.token_create(
        actor=SYSTEM,
        user=admin.user,
        tenant=acme,
        name="read-only",
        role=Role.READER,
        session_passed_mfa=True,
    )
    client = bearer(reader_secret)

    for role in (Role.MEMBER, Role.ADMIN):
        refused = client.post("/api/v1/tokens", {"name": "up", "role": role}, format="json")
        assert refused.status_code == 403
        assert error_code(refused) == "role_too_high"
        assert refused.json()["error"]["details"] == {"max_role": Role.READER}
    defaulted = client.post("/api/v1/tokens", {"name": "plain"}, format="json")

    assert defaulted.status_code == 201, defaulted.content
    assert defaulted.json()["role"] == Role.READER
    assert list(ApiToken.objects.filter(user=admin.user).values_list("name", flat=True)) == [
        "plain",
        "read-only",
        "test",
    ]
    # The admin's own admin token may still make an admin token.
    assert (
        admin.client()
        .post("/api/v1/tokens", {"name": "full", "role": Role.ADMIN}, format="json")
        .json()["role"]
        == Role.ADMIN
    )


def test_a_token_cannot_outlive_the_token_that_made_it(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    ceiling = timezone.now() + timedelta(days=1)
    _, short_secret = services.token_create(
        actor=SYSTEM,
        user=admin.user,
        tenant=acme,
        name="short",
        expires_at=ceiling,
        session_passed_mfa=True,
    )
    client = bearer(short_secret)

    too_far = client.post(
        "/api/v1/tokens",
        {"name": "long", "expires_at": iso(ceiling + timedelta(hours=1))},
        format="json",
    )
    within = client.post(
        "/api/v1/tokens",
        {"name": "shorter", "expires_at": iso(ceiling - timedelta(hours=1))},
        format="json",
    )
    defaulted = client.post("/api/v1/tokens", {"name": "default"}, format="json")

    assert too_far.status_code == 400
    assert error_code(too_far) == "expiry_too_far"
    assert datetime.fromisoformat(too_far.json()["error"]["details"]["max_expires_at"]) == ceiling
    assert within.status_code == 201, within.content
    # Without an expiry, the default lifetime is cut at the making token's expiry.
    assert defaulted.status_code == 201, defaulted.content
    assert datetime.fromisoformat(defaulted.json()["expires_at"]) == ceiling
    assert not ApiToken.objects.filter(name="long").exists()


def test_a_default_token_can_make_another_default_token(acme, make_caller):
    """The fixture's token has the default lifetime; a token it makes without an expiry gets
    the same ceiling, rather than a refusal for ending microseconds later."""
    admin = make_caller(acme, Role.ADMIN)
    response = admin.client().post("/api/v1/tokens", {"name": "ci"}, format="json")
    assert response.status_code == 201, response.content
    calling = ApiToken.objects.get(user=admin.user, name="test")
    assert datetime.fromisoformat(response.json()["expires_at"]) <= calling.expires_at


def test_expiry_is_capped_by_the_maximum_lifetime(settings, acme, make_caller):
    settings.TOKEN_MAX_LIFETIME = timedelta(days=10)
    admin = make_caller(acme, Role.ADMIN)  # its own token was made before the cap: 90 days

    too_far = admin.client().post(
        "/api/v1/tokens",
        {"name": "long", "expires_at": iso(timezone.now() + timedelta(days=20))},
        format="json",
    )
    within = admin.client().post(
        "/api/v1/tokens",
        {"name": "ok", "expires_at": iso(timezone.now() + timedelta(days=9))},
        format="json",
    )

    assert too_far.status_code == 400
    assert error_code(too_far) == "expiry_too_far"
    limit = datetime.fromisoformat(too_far.json()["error"]["details"]["max_expires_at"])
    assert abs(limit - (timezone.now() + timedelta(days=10))) < timedelta(minutes=1)
    assert within.status_code == 201


def test_a_session_cannot_ask_for_more_than_the_maximum_lifetime(acme, make_caller, settings):
    admin = make_caller(acme, Role.ADMIN)
    client = sign_in_verified(APIClient(), admin.user)
    too_far = client.post(
        "/api/v1/tokens",
        {"name": "long", "expires_at": iso(timezone.now() + settings.TOKEN_MAX_LIFETIME * 2)},
        format="json",
    )
    assert too_far.status_code == 400
    assert error_code(too_far) == "expiry_too_far"


def test_an_expiry_in_the_past_is_refused(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    response = admin.client().post(
        "/api/v1/tokens",
        {"name": "old", "expires_at": iso(timezone.now() - timedelta(minutes=1))},
        format="json",
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert response.json()["error"]["details"] == {"expires_at": "past"}
    assert not ApiToken.objects.filter(name="old").exists()


def test_revoking_a_token_takes_effect_on_the_next_request(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    created = admin.client().post("/api/v1/tokens", {"name": "ci"}, format="json").json()
    ci = bearer(created["secret"])
    assert ci.get("/api/v1/keypairs").status_code == 200

    revoked = admin.client().delete(f"/api/v1/tokens/{created['id']}")

    assert revoked.status_code == 204
    after = ci.get("/api/v1/keypairs")
    assert after.status_code == 401
    assert error_code(after) == "token_revoked"
    assert after["WWW-Authenticate"] == 'Bearer realm="andromede"'
    shown = admin.client().get(f"/api/v1/tokens/{created['id']}").json()
    assert shown["status"] == "revoked"
    assert shown["revoked_at"] is not None
    assert AuditEvent.objects.filter(action="token.revoke", target_id=created["id"]).count() == 1


def test_using_a_token_records_when_it_was_last_used(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    created = admin.client().post("/api/v1/tokens", {"name": "ci"}, format="json").json()
    assert created["last_used_at"] is None

    before = timezone.now()
    assert bearer(created["secret"]).get("/api/v1/tenant").status_code == 200

    token = ApiToken.objects.get(pk=created["id"])
    assert token.last_used_at is not None
    assert token.last_used_at >= before
    assert token.last_used_address == "127.0.0.1"
    shown = admin.client().get(f"/api/v1/tokens/{created['id']}").json()
    assert datetime.fromisoformat(shown["last_used_at"]) == token.last_used_at


# ---- Members -------------------------------------------------------------------------------


def test_an_admin_invites_an_existing_user_who_accepts(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    newcomer = User.objects.create_user(
        username="newcomer", password="correct horse battery staple"
    )

    response = admin.client().post(
        "/api/v1/members", {"username": "newcomer", "role": Role.MEMBER}, format="json"
    )

    assert response.status_code == 202, response.content
    assert (response.json()["username"], response.json()["status"]) == ("newcomer", "pending")
    assert not Membership.objects.filter(user=newcomer).exists()
    session = APIClient()
    session.force_login(newcomer)
    accepted = session.post(f"/api/v1/invitations/{response.json()['id']}/accept")
    assert accepted.status_code == 201, accepted.content
    membership = Membership.objects.get(pk=accepted.json()["id"])
    assert (membership.tenant, membership.user.username, membership.role) == (
        acme,
        "newcomer",
        Role.MEMBER,
    )
    listed = admin.client().get("/api/v1/members", {"username": "newcomer"}).json()["results"]
    assert [m["id"] for m in listed] == [membership.pk]


@pytest.mark.parametrize("username", ["nobody", "disabled", "operator"])
def test_an_invitation_does_not_tell_whether_an_account_exists(acme, make_caller, username):
    """M9: `400 unknown_user` used to be a global username oracle."""
    admin = make_caller(acme, Role.ADMIN)
    password = "correct horse battery staple"
    User.objects.create_user(username="disabled", password=password, is_active=False)
    User.objects.create_user(username="operator", password=password, is_staff=True)
    before = list(Membership.objects.order_by("pk").values())

    response = admin.client().post(
        "/api/v1/members", {"username": username, "role": Role.MEMBER}, format="json"
    )

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert list(Membership.objects.order_by("pk").values()) == before


def test_inviting_a_member_again_is_refused(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    User.objects.create_user(username="already", password="correct horse battery staple")
    services.membership_add(actor=SYSTEM, tenant=acme, username="already", role=Role.READER)
    before = list(Membership.objects.order_by("pk").values())
    response = admin.client().post(
        "/api/v1/members", {"username": "already", "role": Role.MEMBER}, format="json"
    )
    assert response.status_code == 409
    assert error_code(response) == "already_member"
    assert list(Membership.objects.order_by("pk").values()) == before


def test_an_admin_changes_a_role(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    reader = make_caller(acme, Role.READER)
    membership = Membership.objects.get(user=reader.user, tenant=acme)

    response = admin.client().patch(
        f"/api/v1/members/{membership.pk}", {"role": Role.MEMBER}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["role"] == Role.MEMBER
    membership.refresh_from_db()
    assert membership.role == Role.MEMBER
    # The promoted member's existing reader token stays a reader token.
    assert bearer(reader.token).get("/api/v1/tenant").json()["your_role"] == Role.READER
    event = AuditEvent.objects.filter(action="membership.update").last()
    assert event is not None
    assert event.details == {"from": Role.READER, "to": Role.MEMBER}


def test_the_last_admin_can_be_neither_removed_nor_demoted(acme, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    own = Membership.objects.get(user=admin.user, tenant=acme)
    client = admin.client()

    demoted = client.patch(f"/api/v1/members/{own.pk}", {"role": Role.MEMBER}, format="json")
    removed = client.delete(f"/api/v1/members/{own.pk}")

    assert demoted.status_code == removed.status_code == 409
    assert error_code(demoted) == error_code(removed) == "last_admin"
    own.refresh_from_db()
    assert own.role == Role.ADMIN

    # With a second admin, the first may step down.
    second = make_caller(acme, Role.ADMIN)
    assert (
        client.patch(f"/api/v1/members/{own.pk}", {"role": Role.MEMBER}, format="json").status_code
        == 200
    )
    last = Membership.objects.get(user=second.user, tenant=acme)
    refused = second.client().delete(f"/api/v1/members/{last.pk}")
    assert refused.status_code == 409
    assert error_code(refused) == "last_admin"


def test_removing_a_member_revokes_their_tokens_in_that_tenant_only(acme, make_tenant, make_caller):
    admin = make_caller(acme, Role.ADMIN)
    leaver = make_caller(acme, Role.MEMBER)
    _, second_secret = services.token_create(
        actor=SYSTEM, user=leaver.user, tenant=acme, name="second"
    )
    globex = make_tenant("globex")
    services.membership_add(
        actor=SYSTEM, tenant=globex, username=leaver.user.username, role=Role.MEMBER
    )
    _, elsewhere_secret = services.token_create(
        actor=SYSTEM, user=leaver.user, tenant=globex, name="elsewhere"
    )
    membership = Membership.objects.get(user=leaver.user, tenant=acme)

    response = admin.client().delete(f"/api/v1/members/{membership.pk}")

    assert response.status_code == 204
    assert not Membership.objects.filter(pk=membership.pk).exists()
    for secret in (leaver.token, second_secret):
        refused = bearer(secret).get("/api/v1/keypairs")
        assert refused.status_code == 401
        assert error_code(refused) == "token_revoked"
    assert bearer(elsewhere_secret).get("/api/v1/tenant").json()["slug"] == "globex"
    event = AuditEvent.objects.filter(action="membership.delete").last()
    assert event is not None
    assert event.details["tokens_revoked"] == 2


# ---- Operators -----------------------------------------------------------------------------

TENANT_ENDPOINTS = [
    ("GET", "/api/v1/keypairs"),
    ("POST", "/api/v1/keypairs"),
    ("GET", "/api/v1/tokens"),
    ("GET", "/api/v1/members"),
    ("GET", "/api/v1/quotas"),
    ("GET", "/api/v1/tenant"),
    ("GET", "/api/v1/audit-events"),
]


@pytest.mark.parametrize(("method", "path"), TENANT_ENDPOINTS)
def test_an_operator_token_cannot_act_in_a_tenant(acme, make_caller, method, path):
    operator = make_caller(None, operator=True)
    response = operator.client().generic(method, path, "{}", content_type="application/json")
    assert response.status_code == 403
    assert error_code(response) == "operator_token"


def test_operators_list_tenants_and_set_quotas(acme, make_tenant, make_caller):
    make_tenant("globex")
    operator = make_caller(None, operator=True)
    client = operator.client()

    listed = client.get("/api/v1/admin/tenants")
    updated = client.put(
        f"/api/v1/admin/tenants/{acme.id}/quotas", {"limits": {"keypairs": 3}}, format="json"
    )

    assert listed.status_code == 200
    assert {t["slug"] for t in listed.json()["results"]} == {"acme", "globex"}
    assert updated.status_code == 200, updated.content
    assert {"resource": "keypairs", "limit": 3, "usage": 0, "remaining": 3} in updated.json()[
        "results"
    ]
    assert Quota.objects.get(tenant=acme, resource="keypairs").limit == 3
    member = make_caller(acme, Role.MEMBER)
    lines = member.client().get("/api/v1/quotas").json()["results"]
    [line] = [line for line in lines if line["resource"] == "keypairs"]
    assert line["limit"] == 3


@pytest.mark.parametrize(
    ("method", "path_template", "body"),
    [
        ("GET", "/api/v1/admin/tenants", None),
        ("GET", "/api/v1/admin/tenants/{id}/quotas", None),
        ("PUT", "/api/v1/admin/tenants/{id}/quotas", {"limits": {"keypairs": 3}}),
        ("GET", "/api/v1/admin/audit-events", None),
    ],
)
def test_a_tenant_admin_cannot_use_the_operator_api(acme, make_caller, method, path_template, body):
    admin = make_caller(acme, Role.ADMIN)
    path = path_template.format(id=acme.id)
    data = "" if body is None else json.dumps(body)
    response = admin.client().generic(method, path, data, content_type="application/json")
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"
    assert not Quota.objects.filter(tenant=acme).exists()


def test_a_reader_token_cannot_see_or_revoke_its_owners_admin_tokens(acme, make_caller):
    """L1: a reader token handed to monitoring listed and revoked the admin's tokens."""
    admin = make_caller(acme, Role.ADMIN)
    admin_token = ApiToken.objects.get(user=admin.user, name="test")
    _, reader_secret = services.token_create(
        actor=SYSTEM,
        user=admin.user,
        tenant=acme,
        name="monitoring",
        role=Role.READER,
        session_passed_mfa=True,
    )
    reader = bearer(reader_secret)
    listed = [t["name"] for t in reader.get("/api/v1/tokens").json()["results"]]
    assert listed == ["monitoring"]
    assert reader.get(f"/api/v1/tokens/{admin_token.pk}").status_code == 404
    assert reader.delete(f"/api/v1/tokens/{admin_token.pk}").status_code == 404
    admin_token.refresh_from_db()
    assert admin_token.revoked_at is None
    # The admin token still sees both.
    names = {t["name"] for t in admin.client().get("/api/v1/tokens").json()["results"]}
    assert names == {"monitoring", "test"}
