"""Members, invitations and the tenant's settings in the portal: the API's rules
(tenants/api/members.py, invitations.py, tenant.py) — everyone lists the members, only admins
invite, change roles and remove; an invitation becomes a membership when its addressee
accepts it from their own account."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from iaas.models import AuditEvent
from tenants.models import ApiToken, Invitation, Membership, Role, Tenant
from tests.support.mfa import sign_in_verified
from tests.support.portal_client import portal_client


def _client(user: Any, *, verified: bool = False) -> Client:
    return portal_client(user, verified=verified)


def _membership(user: Any, tenant: Tenant) -> Membership:
    return Membership.objects.get(user=user, tenant=tenant)


@pytest.fixture
def acme(make_tenant, make_caller):
    tenant = make_tenant("acme")
    admin = make_caller(tenant, Role.ADMIN)
    return tenant, admin, _client(admin.user, verified=True)


def test_the_members_page_lists_this_tenants_members_only(acme, make_tenant, make_caller):
    tenant, admin, client = acme
    reader = make_caller(tenant, Role.READER)
    stranger = make_caller(make_tenant("other"), Role.MEMBER)

    page = client.get("/t/acme/members/")

    body = page.content.decode()
    assert page.status_code == 200
    assert admin.user.username in body
    assert reader.user.username in body
    assert stranger.user.username not in body
    assert "Change the role" in body


def test_a_reader_sees_no_write_buttons_and_is_refused_if_it_posts(acme, make_caller):
    tenant, admin, _ = acme
    reader = make_caller(tenant, Role.READER)
    client = _client(reader.user)
    target = _membership(admin.user, tenant)
    events = AuditEvent.objects.exclude(outcome="refused").count()

    page = client.get("/t/acme/members/")
    role = client.post(f"/t/acme/members/{target.pk}/role/", {"role": Role.READER})
    delete = client.post(f"/t/acme/members/{target.pk}/delete/")
    invite = client.post("/t/acme/members/invitations/", {"username": "x", "role": "admin"})

    assert page.status_code == 200
    assert "Change the role" not in page.content.decode()
    assert "Invite someone" not in page.content.decode()
    assert (role.status_code, delete.status_code, invite.status_code) == (403, 403, 403)
    target.refresh_from_db()
    assert target.role == Role.ADMIN
    assert not Invitation.objects.filter(username="x").exists()
    # Nothing changed but the refusals, each audited as the API audits refused writes.
    assert AuditEvent.objects.exclude(outcome="refused").count() == events
    assert AuditEvent.objects.filter(outcome="refused", actor_id=reader.user.pk).count() == 3


def test_a_member_cannot_see_the_removal_page_nor_the_invitations(acme, make_caller):
    tenant, admin, _ = acme
    member = make_caller(tenant, Role.MEMBER)
    client = _client(member.user)
    target = _membership(admin.user, tenant)

    assert client.get(f"/t/acme/members/{target.pk}/delete/").status_code == 403
    assert client.get("/t/acme/members/invitations/").status_code == 403


def test_an_admin_changes_a_members_role(acme, make_caller):
    tenant, _, client = acme
    member = make_caller(tenant, Role.MEMBER)
    target = _membership(member.user, tenant)

    answer = client.post(f"/t/acme/members/{target.pk}/role/", {"role": Role.READER}, follow=True)

    target.refresh_from_db()
    assert target.role == Role.READER
    assert f"{member.user.username} is now reader." in answer.content.decode()
    event = AuditEvent.objects.filter(action="membership.update").latest("id")
    assert event.details == {"from": "member", "to": "reader"}
    assert event.tenant_id == tenant.pk


def test_the_last_admin_cannot_step_down_and_is_told_why(acme):
    tenant, admin, client = acme
    target = _membership(admin.user, tenant)

    answer = client.post(f"/t/acme/members/{target.pk}/role/", {"role": Role.MEMBER}, follow=True)

    target.refresh_from_db()
    assert target.role == Role.ADMIN
    assert "A tenant keeps at least one administrator" in answer.content.decode()


def test_a_foreign_membership_is_a_404(acme, make_tenant, make_caller):
    _, _, client = acme
    stranger = make_caller(make_tenant("other"), Role.MEMBER)
    foreign = _membership(stranger.user, stranger.tenant)

    assert client.get(f"/t/acme/members/{foreign.pk}/delete/").status_code == 404
    assert client.post(f"/t/acme/members/{foreign.pk}/delete/").status_code == 404
    assert client.post(f"/t/acme/members/{foreign.pk}/role/", {"role": "reader"}).status_code == 404
    assert Membership.objects.filter(pk=foreign.pk, role=Role.MEMBER).exists()
    assert client.get("/t/other/members/").status_code == 404


def test_removing_a_member_asks_first_then_revokes_their_tokens(acme, make_caller):
    tenant, _, client = acme
    member = make_caller(tenant, Role.MEMBER)
    target = _membership(member.user, tenant)

    confirm = client.get(f"/t/acme/members/{target.pk}/delete/")
    assert confirm.status_code == 200
    assert Membership.objects.filter(pk=target.pk).exists()
    assert "every API token they hold for it is revoked" in confirm.content.decode()

    answer = client.post(f"/t/acme/members/{target.pk}/delete/")

    assert answer.status_code == 302
    assert not Membership.objects.filter(pk=target.pk).exists()
    assert not ApiToken.objects.filter(user=member.user, revoked_at__isnull=True).exists()
    assert AuditEvent.objects.filter(action="membership.delete", target_label=member.user.username)


def test_removing_the_last_admin_is_refused_and_said(acme):
    tenant, admin, client = acme
    target = _membership(admin.user, tenant)

    answer = client.post(f"/t/acme/members/{target.pk}/delete/")

    assert answer.status_code == 409
    assert "A tenant keeps at least one administrator" in answer.content.decode()
    assert Membership.objects.filter(pk=target.pk).exists()


def test_an_admin_invites_a_username_and_sees_it_pending(acme):
    tenant, _, client = acme

    answer = client.post(
        "/t/acme/members/invitations/", {"username": " newcomer ", "role": "member"}, follow=True
    )

    invitation = Invitation.objects.get(tenant=tenant, username="newcomer")
    assert invitation.status == Invitation.Status.PENDING
    assert invitation.role == Role.MEMBER
    assert AuditEvent.objects.filter(action="membership.invite", target_label="newcomer").exists()
    body = answer.content.decode()
    assert "newcomer is invited as member" in body
    assert "newcomer" in client.get("/t/acme/members/").content.decode()


def test_inviting_a_member_again_is_refused_and_said(acme, make_caller):
    tenant, _, client = acme
    member = make_caller(tenant, Role.MEMBER)

    answer = client.post(
        "/t/acme/members/invitations/", {"username": member.user.username, "role": "admin"}
    )

    assert answer.status_code == 400
    assert "already a member of the tenant" in answer.content.decode()
    assert not Invitation.objects.filter(username=member.user.username).exists()


def test_the_invitee_accepts_from_their_account(acme):
    tenant, _, client = acme
    client.post("/t/acme/members/invitations/", {"username": "newcomer", "role": "reader"})
    invitation = Invitation.objects.get(username="newcomer")
    newcomer = get_user_model().objects.create_user(username="newcomer", password="x" * 12)
    someone = get_user_model().objects.create_user(username="someone", password="x" * 12)
    theirs, other = _client(newcomer), _client(someone)

    listed = theirs.get("/account/invitations/").content.decode()
    not_listed = other.get("/account/invitations/").content.decode()
    stolen = other.post(f"/account/invitations/{invitation.pk}/accept/")
    accepted = theirs.post(f"/account/invitations/{invitation.pk}/accept/")

    assert "Acme" in listed
    assert "Acme" not in not_listed
    assert stolen.status_code == 404
    assert not Membership.objects.filter(user=someone).exists()
    assert accepted.status_code == 302
    assert accepted["Location"] == "/t/acme/"
    assert _membership(newcomer, tenant).role == Role.READER
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED


def test_the_invitee_may_decline(acme):
    _, _, client = acme
    client.post("/t/acme/members/invitations/", {"username": "newcomer", "role": "member"})
    invitation = Invitation.objects.get(username="newcomer")
    newcomer = get_user_model().objects.create_user(username="newcomer", password="x" * 12)

    answer = _client(newcomer).post(f"/account/invitations/{invitation.pk}/decline/", follow=True)

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.DECLINED
    assert not Membership.objects.filter(user=newcomer).exists()
    assert "You declined the invitation." in answer.content.decode()


def test_the_settings_show_residency_and_the_mfa_rule_to_every_role(make_tenant, make_caller):
    tenant = make_tenant("acme", residency=["FR", "DE"])
    Tenant.objects.filter(pk=tenant.pk).update(require_mfa=True)
    reader = make_caller(tenant, Role.READER)
    make_tenant("other")
    client = _client(reader.user, verified=True)

    page = client.get("/t/acme/settings/")

    body = page.content.decode()
    assert page.status_code == 200
    assert "<code>DE</code>" in body
    assert "<code>FR</code>" in body
    assert "Required for every member" in body
    assert '<form method="post"' not in body.split('id="content"')[1]
    assert client.get("/t/other/settings/").status_code == 404


def test_the_pages_speak_french_by_default(acme):
    _, admin, _ = acme
    client = Client()
    sign_in_verified(client, admin.user)

    members = client.get("/t/acme/members/").content.decode()
    tokens = client.get("/t/acme/tokens/").content.decode()
    audit = client.get("/t/acme/audit/").content.decode()

    assert "Changer le rôle" in members
    assert "Invitations en attente" in members
    assert "Vos jetons d\u2019API" in tokens
    assert "Journal d\u2019audit" in audit
