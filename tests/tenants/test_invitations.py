"""M9: tenant admins invite; the invitee accepts. The answer to an invitation never tells
whether the username exists, and nobody becomes a member without accepting."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from iaas.models import AuditEvent
from tenants.models import Invitation, Membership, Role
from tests.support.callers import PASSWORD
from tests.support.mfa import sign_in_verified

pytestmark = [pytest.mark.django_db]
User = get_user_model()


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def admin(acme, make_caller):
    return make_caller(acme, Role.ADMIN)


def invite(admin, username: str, role: str = Role.MEMBER):
    return admin.client().post(
        "/api/v1/members", {"username": username, "role": role}, format="json"
    )


def session_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_answer_is_the_same_whether_the_username_exists_or_not(admin, make_tenant, make_caller):
    existing = make_caller(make_tenant("globex")).user.username
    answers = [invite(admin, name) for name in (existing, "nobody-by-that-name")]
    assert [a.status_code for a in answers] == [202, 202]
    shapes = [
        {
            k: v
            for k, v in a.json().items()
            if k not in ("id", "username", "created_at", "expires_at")
        }
        for a in answers
    ]
    assert shapes[0] == shapes[1] == {"tenant": "acme", "role": "member", "status": "pending"}
    assert not Membership.objects.filter(user__username=existing, tenant=admin.tenant).exists()


def test_the_invitee_accepts_and_becomes_a_member(admin, make_tenant, make_caller):
    invitee = make_caller(make_tenant("globex")).user
    invitation_id = invite(admin, invitee.username, Role.READER).json()["id"]
    client = session_of(invitee)
    # Until accepted, the invitee's sessions are not disturbed (one tenant: no X-Tenant needed).
    assert client.get("/api/v1/keypairs").status_code == 200
    listed = client.get("/api/v1/invitations").json()["results"]
    assert [(i["id"], i["tenant"], i["role"]) for i in listed] == [
        (invitation_id, "acme", "reader")
    ]

    accepted = client.post(f"/api/v1/invitations/{invitation_id}/accept")
    assert accepted.status_code == 201, accepted.content
    assert Membership.objects.get(user=invitee, tenant=admin.tenant).role == Role.READER
    assert Invitation.objects.get(pk=invitation_id).status == "accepted"
    event = AuditEvent.objects.filter(action="membership.create").latest("id")
    assert (event.tenant_id, event.actor_id) == (admin.tenant.pk, invitee.pk)
    assert client.post(f"/api/v1/invitations/{invitation_id}/accept").status_code == 404


def test_declining_leaves_no_membership(admin, make_tenant, make_caller):
    invitee = make_caller(make_tenant("globex")).user
    invitation_id = invite(admin, invitee.username).json()["id"]
    client = session_of(invitee)
    assert client.post(f"/api/v1/invitations/{invitation_id}/decline").status_code == 204
    assert not Membership.objects.filter(user=invitee, tenant=admin.tenant).exists()
    assert client.get("/api/v1/invitations").json()["results"] == []


def test_someone_elses_invitation_is_a_404_and_changes_nothing(admin, make_tenant, make_caller):
    invitee = make_caller(make_tenant("globex")).user
    intruder = make_caller(make_tenant("initech")).user
    invitation_id = invite(admin, invitee.username).json()["id"]
    client = session_of(intruder)
    assert client.get("/api/v1/invitations").json()["results"] == []
    for verb in ("accept", "decline"):
        assert client.post(f"/api/v1/invitations/{invitation_id}/{verb}").status_code == 404
    assert Invitation.objects.get(pk=invitation_id).status == "pending"
    assert not Membership.objects.filter(user=intruder, tenant=admin.tenant).exists()


def test_only_admins_invite_and_tokens_cannot_accept(acme, admin, make_caller):
    for role in (Role.READER, Role.MEMBER):
        caller = make_caller(acme, role)
        refused = invite(caller, "someone")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "permission_denied"
    assert not Invitation.objects.exists()
    invitee = make_caller(acme, Role.READER)
    invitation_id = invite(admin, "x").json()["id"]
    assert invitee.client().post(f"/api/v1/invitations/{invitation_id}/accept").status_code == 403


def test_an_operator_account_cannot_accept(admin):
    operator = User.objects.create_user("ops", password=PASSWORD, is_staff=True)
    invitation_id = invite(admin, "ops").json()["id"]
    client = sign_in_verified(Client(), operator)
    refused = client.post(f"/api/v1/invitations/{invitation_id}/accept")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "operator_account"
    assert not Membership.objects.filter(user=operator).exists()


def test_inviting_a_current_member_is_a_conflict(acme, admin, make_caller):
    member = make_caller(acme, Role.MEMBER)
    refused = invite(admin, member.user.username)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "already_member"
