"""The operator admin: operators see everything, change through the services (so changes are
validated and audited), never see token secrets, and cannot rewrite the audit log."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from compute.models import KeyPair
from iaas.models import AuditEvent
from tenants.models import ApiToken, Membership, Quota, Tenant
from tests.support.mfa import sign_in_verified

pytestmark = [pytest.mark.django_db]

User = get_user_model()


@pytest.fixture
def operator():
    return User.objects.create_superuser("root", password="correct horse battery staple")


@pytest.fixture
def admin_client(operator) -> Client:
    return sign_in_verified(Client(), operator)


@pytest.fixture
def member(make_tenant, make_caller, ssh_public_keys):
    """A tenant member with a token and one keypair, so every changelist has a row."""
    caller = make_caller(make_tenant("acme"), "member")
    response = caller.client().post(
        "/api/v1/keypairs",
        {"name": "laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
    )
    assert response.status_code == 201
    return caller


def management_form(prefix: str, total: int = 0, initial: int = 0) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


@pytest.mark.parametrize(
    ("url", "shows"),
    [
        ("/admin/tenants/tenant/", "acme"),
        ("/admin/tenants/membership/", "member1-acme"),
        ("/admin/tenants/apitoken/", "test"),
        ("/admin/iaas/auditevent/", "keypair.create"),
        ("/admin/compute/keypair/", "laptop"),
    ],
)
def test_operators_open_every_changelist(admin_client, member, url, shows):
    response = admin_client.get(url)
    assert response.status_code == 200
    assert shows in response.content.decode()


def test_tenant_members_are_not_operators(member):
    client = Client()
    client.force_login(member.user)
    response = client.get("/admin/tenants/tenant/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# ---- tokens ----------------------------------------------------------------------------------


def test_token_pages_never_show_the_secret_hash(admin_client, member):
    token = ApiToken.objects.get(user=member.user)
    for url in ("/admin/tenants/apitoken/", f"/admin/tenants/apitoken/{token.pk}/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200
        page = response.content.decode()
        assert token.key_id in page
        assert token.secret_hash not in page
        assert "secret_hash" not in page
        assert "Secret hash" not in page
        assert member.token.split("_", 2)[2] not in page


def test_tokens_cannot_be_added_or_deleted(admin_client, member):
    token = ApiToken.objects.get(user=member.user)
    assert admin_client.get("/admin/tenants/apitoken/add/").status_code == 403
    assert admin_client.post("/admin/tenants/apitoken/add/", {"name": "x"}).status_code == 403
    delete_url = f"/admin/tenants/apitoken/{token.pk}/delete/"
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = admin_client.get("/admin/tenants/apitoken/").content.decode()
    assert 'value="delete_selected"' not in changelist
    assert 'value="revoke"' in changelist
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_the_revoke_action_revokes_and_audits(admin_client, operator, member):
    token = ApiToken.objects.get(user=member.user)
    assert member.client().get("/api/v1/keypairs").status_code == 200
    response = admin_client.post(
        "/admin/tenants/apitoken/",
        {"action": "revoke", "_selected_action": [str(token.pk)]},
        REMOTE_ADDR="203.0.113.5",
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action="token.revoke")
    assert event.target_id == str(token.pk)
    assert event.actor_id == operator.pk
    assert event.actor_label == "root"
    assert event.credential == "admin-session"
    assert event.source_address == "203.0.113.5"
    assert event.tenant_id == member.tenant.pk
    refused = member.client().get("/api/v1/keypairs")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_revoked"

    # revoking again changes nothing and writes no second event
    admin_client.post(
        "/admin/tenants/apitoken/", {"action": "revoke", "_selected_action": [str(token.pk)]}
    )
    assert AuditEvent.objects.filter(action="token.revoke").count() == 1


# ---- the audit log is read-only ----------------------------------------------------------


def test_audit_events_cannot_be_added_changed_or_deleted(admin_client, member):
    event = AuditEvent.objects.filter(action="keypair.create").get()
    before = AuditEvent.objects.count()
    assert admin_client.get("/admin/iaas/auditevent/add/").status_code == 403
    assert admin_client.post("/admin/iaas/auditevent/add/", {"action": "x"}).status_code == 403
    delete_url = f"/admin/iaas/auditevent/{event.pk}/delete/"
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403

    change_url = f"/admin/iaas/auditevent/{event.pk}/change/"
    page = admin_client.get(change_url)
    assert page.status_code == 200  # viewable
    html = page.content.decode()
    assert 'name="_save"' not in html
    assert "keypair.create" in html
    assert admin_client.post(change_url, {"action": "forged"}).status_code == 403

    changelist = admin_client.get("/admin/iaas/auditevent/").content.decode()
    assert 'value="delete_selected"' not in changelist
    assert AuditEvent.objects.count() == before
    assert AuditEvent.objects.get(pk=event.pk).action == "keypair.create"


def test_keypairs_are_read_only_in_the_admin(admin_client, member):
    keypair = KeyPair.objects.get()
    assert admin_client.get("/admin/compute/keypair/add/").status_code == 403
    page = admin_client.get(f"/admin/compute/keypair/{keypair.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert (
        admin_client.post(
            f"/admin/compute/keypair/{keypair.pk}/change/", {"name": "renamed"}
        ).status_code
        == 403
    )
    assert KeyPair.objects.get().name == "laptop"


# ---- tenants go through the services ---------------------------------------------------------


def test_creating_a_tenant_goes_through_the_service(admin_client, operator):
    response = admin_client.post(
        "/admin/tenants/tenant/add/",
        {
            "name": "Beta Corp",
            "slug": "beta",
            "status": "active",
            "residency": '["fr", "FR"]',
            **management_form("quotas", total=1),
            "quotas-0-resource": "keypairs",
            "quotas-0-limit": "7",
            **management_form("memberships"),
        },
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant = Tenant.objects.get(slug="beta")
    assert tenant.name == "Beta Corp"
    assert tenant.residency == ["FR"]  # normalised by the service
    created = AuditEvent.objects.get(action="tenant.create", tenant_id=tenant.pk)
    assert created.actor_id == operator.pk
    assert created.credential == "admin-session"
    assert created.source_address == "203.0.113.9"
    assert Quota.objects.get(tenant=tenant).limit == 7
    quota_event = AuditEvent.objects.get(action="quota.update", tenant_id=tenant.pk)
    assert quota_event.details == {"resource": "keypairs", "from": None, "to": 7}


def test_a_duplicate_tenant_slug_is_refused_in_the_form(admin_client, make_tenant):
    make_tenant("acme")
    before = AuditEvent.objects.count()
    response = admin_client.post(
        "/admin/tenants/tenant/add/",
        {
            "name": "Acme again",
            "slug": "acme",
            "status": "active",
            "residency": '["FR"]',
            **management_form("quotas"),
            **management_form("memberships"),
        },
    )
    assert response.status_code == 200  # the form again, with an error
    assert "already exists" in response.content.decode()
    assert Tenant.objects.filter(slug="acme").count() == 1
    assert AuditEvent.objects.count() == before


def test_changing_a_tenant_is_audited(admin_client, make_tenant):
    tenant = make_tenant("acme")
    response = admin_client.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/",
        {
            "name": "Acme Renamed",
            "slug": "acme",
            "status": "suspended",
            "residency": '["FR"]',
            "initial-residency": '["FR"]',  # the page's hidden copy (callable model default)
            **management_form("quotas"),
            **management_form("memberships"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant.refresh_from_db()
    assert (tenant.name, tenant.status) == ("Acme Renamed", "suspended")
    event = AuditEvent.objects.get(action="tenant.update")
    assert sorted(event.details["changed"]) == ["name", "status"]


def test_tenants_cannot_be_deleted_in_the_admin(admin_client, make_tenant):
    tenant = make_tenant("acme")
    assert admin_client.get(f"/admin/tenants/tenant/{tenant.pk}/delete/").status_code == 403
    assert Tenant.objects.filter(pk=tenant.pk).exists()


def test_adding_a_member_goes_through_the_service(admin_client, make_tenant):
    tenant = make_tenant("acme")
    user = User.objects.create_user("carol", password="correct horse battery staple")
    response = admin_client.post(
        "/admin/tenants/membership/add/", {"user": user.pk, "tenant": tenant.pk, "role": "admin"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    membership = Membership.objects.get(user=user)
    assert membership.role == "admin"
    event = AuditEvent.objects.get(action="membership.create")
    assert (event.target_label, event.credential) == ("carol", "admin-session")
