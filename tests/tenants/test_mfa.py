"""H3: a second factor (TOTP, with recovery codes) for operators, tenant admins and members of
tenants that require it, on every sign-in path: an account bound to MFA gets no session and no
new token without its second factor."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from iaas.models import AuditEvent
from tenants import services
from tenants.models import ApiToken, Role, SignInAttempt
from tests.support.callers import PASSWORD, SYSTEM
from tests.support.mfa import current_code, enrol_totp

pytestmark = [pytest.mark.django_db]
User = get_user_model()


def login(client: Client, username: str, password: str = PASSWORD, **extra):
    return client.post(
        "/api/v1/auth/login",
        {"username": username, "password": password, **extra},
        content_type="application/json",
    )


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def code_of(secret_b32: str) -> str:
    """What an authenticator app shows for this base32 secret now."""
    import base64

    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    return str(TOTP(key).token()).zfill(6)


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def admin(acme, make_caller):
    return make_caller(acme, Role.ADMIN)


# ---- who must use a second factor --------------------------------------------------------


def test_a_tenant_admin_without_a_second_factor_gets_an_enrol_only_session(admin):
    client = Client()
    response = login(client, admin.user.username)
    assert response.status_code == 200, response.content
    assert response.json()["mfa"] == {"required": True, "enrolled": False, "verified": False}

    refused = client.get("/api/v1/keypairs")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "mfa_required"
    tokens_before = ApiToken.objects.count()
    minted = client.post("/api/v1/tokens", {"name": "x"}, content_type="application/json")
    assert minted.status_code == 403
    assert minted.json()["error"]["code"] == "mfa_required"
    assert ApiToken.objects.count() == tokens_before
    # What it may do: see who it is, and enrol.
    assert client.get("/api/v1/me").status_code == 200
    assert client.get("/api/v1/auth/mfa").json()["required"] is True


def test_a_plain_member_needs_no_second_factor_unless_the_tenant_requires_it(acme, make_caller):
    member = make_caller(acme, Role.MEMBER)
    client = Client()
    assert login(client, member.user.username).status_code == 200
    assert client.get("/api/v1/keypairs").status_code == 200

    acme.require_mfa = True
    acme.save()
    assert client.get("/api/v1/keypairs").json()["error"]["code"] == "mfa_required"


# ---- enrolment ------------------------------------------------------------------------------


def enrol(client: Client) -> tuple[str, list[str]]:
    begun = client.post("/api/v1/auth/mfa/totp", content_type="application/json")
    assert begun.status_code == 201, begun.content
    secret = begun.json()["secret"]
    assert begun.json()["uri"].startswith("otpauth://totp/")
    confirmed = client.post(
        "/api/v1/auth/mfa/totp/confirm",
        {"otp_token": code_of(secret)},
        content_type="application/json",
    )
    assert confirmed.status_code == 200, confirmed.content
    return secret, confirmed.json()["recovery_codes"]


def test_enrolment_verifies_the_session_and_hands_out_recovery_codes(admin):
    client = Client()
    login(client, admin.user.username)
    begun = client.post("/api/v1/auth/mfa/totp", content_type="application/json")
    wrong = client.post(
        "/api/v1/auth/mfa/totp/confirm", {"otp_token": "000000"}, content_type="application/json"
    )
    if code_of(begun.json()["secret"]) != "000000":
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "invalid_mfa_token"
        assert not TOTPDevice.objects.filter(user=admin.user, confirmed=True).exists()
    TOTPDevice.objects.filter(user=admin.user).delete()

    _, codes = enrol(client)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert client.get("/api/v1/keypairs").status_code == 200
    assert client.get("/api/v1/auth/mfa").json() == {
        "required": True,
        "enrolled": True,
        "verified": True,
        "recovery_codes_left": 10,
    }
    actions = list(
        AuditEvent.objects.filter(actor_id=admin.user.pk).values_list("action", flat=True)
    )
    assert "mfa.enrol" in actions
    again = client.post("/api/v1/auth/mfa/totp", content_type="application/json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "mfa_already_enrolled"


def test_a_token_cannot_enrol_or_reset_a_second_factor(admin):
    client = admin.client()
    assert client.post("/api/v1/auth/mfa/totp").status_code == 403
    assert client.delete("/api/v1/auth/mfa").status_code == 403
    assert not TOTPDevice.objects.filter(user=admin.user).exists()


# ---- signing in once enrolled --------------------------------------------------------------


def test_an_enrolled_account_gets_no_session_from_its_password_alone(admin):
    device = enrol_totp(admin.user)
    client = Client()

    alone = login(client, admin.user.username)
    assert alone.status_code == 401
    assert alone.json()["error"]["code"] == "mfa_token_required"
    assert not signed_in(client)

    wrong_code = "000000" if current_code(device) != "000000" else "111111"
    wrong = login(client, admin.user.username, otp_token=wrong_code)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_mfa_token"
    assert not signed_in(client)
    assert SignInAttempt.objects.filter(username=admin.user.username, succeeded=False).count() == 1

    # django-otp throttles the device after a failure (1 s, doubling): as if that had passed.
    assert TOTPDevice.objects.get(pk=device.pk).throttling_failure_count == 1
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=None)
    right = login(client, admin.user.username, otp_token=current_code(device))
    assert right.status_code == 200, right.content
    assert right.json()["mfa"]["verified"] is True
    assert client.get("/api/v1/keypairs").status_code == 200
    event = AuditEvent.objects.filter(action="auth.login", outcome="success").latest("id")
    assert (event.credential, event.details) == ("password+otp", {"second_factor": True})


def test_a_recovery_code_signs_in_once(admin):
    client = Client()
    login(client, admin.user.username)
    _, codes = enrol(client)
    client = Client()
    assert login(client, admin.user.username, otp_token=codes[0]).status_code == 200
    again = login(Client(), admin.user.username, otp_token=codes[0])
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_mfa_token"
    assert StaticDevice.objects.get(user=admin.user).token_set.count() == 9


def test_the_portal_asks_for_the_code(admin):
    device = enrol_totp(admin.user)
    client = Client()
    client.cookies["andromede_language"] = "en"
    alone = client.post("/login/", {"username": admin.user.username, "password": PASSWORD})
    assert alone.status_code == 200
    assert b"authenticator app" in alone.content
    assert not signed_in(client)
    with_code = client.post(
        "/login/",
        {"username": admin.user.username, "password": PASSWORD, "otp_token": current_code(device)},
    )
    assert with_code.status_code == 302
    assert client.get("/", follow=True).status_code == 200


def test_the_portal_lets_an_unenrolled_admin_in_nowhere(admin):
    client = Client()
    assert (
        client.post("/login/", {"username": admin.user.username, "password": PASSWORD}).status_code
        == 302
    )
    client.cookies["andromede_language"] = "en"
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/account/mfa/")
    tenant = admin.user.memberships.get().tenant
    assert client.get(f"/t/{tenant.slug}/")["Location"] == "/account/mfa/"
    assert b"must use a second factor" in client.get("/account/mfa/").content


# ---- the operator admin ----------------------------------------------------------------------


@pytest.fixture
def operator(db):
    return User.objects.create_user("root", password=PASSWORD, is_staff=True, is_superuser=True)


def admin_login(client: Client, password: str = PASSWORD, otp_token: str = ""):
    return client.post(
        "/admin/login/", {"username": "root", "password": password, "otp_token": otp_token}
    )


def test_the_admin_needs_the_operators_second_factor(operator):
    client = Client()
    admin_login(client)  # not enrolled: the password is right, but the admin stays shut
    assert client.get("/admin/").status_code == 302

    device = enrol_totp(operator)
    client = Client()
    assert admin_login(client).status_code == 200  # the form again: code required
    assert not signed_in(client)
    assert admin_login(client, otp_token=current_code(device)).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_operators_sign_in_to_the_api_on_their_own_path_with_their_code(operator):
    device = enrol_totp(operator)
    client = Client()
    refused = client.post(
        "/api/v1/admin/auth/login",
        {"username": "root", "password": PASSWORD},
        content_type="application/json",
    )
    assert refused.json()["error"]["code"] == "mfa_token_required"
    response = client.post(
        "/api/v1/admin/auth/login",
        {"username": "root", "password": PASSWORD, "otp_token": current_code(device)},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert client.get("/api/v1/admin/tenants").status_code == 200


# ---- tokens ------------------------------------------------------------------------------------


def test_a_token_made_without_a_second_factor_cannot_mint_tokens_for_a_bound_account(admin, acme):
    _, old_secret = services.token_create(
        actor=SYSTEM, user=admin.user, tenant=acme, name="before mfa"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {old_secret}")
    before = ApiToken.objects.count()
    refused = client.post("/api/v1/tokens", {"name": "more"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "mfa_required"
    assert ApiToken.objects.count() == before

    # A token made by a session that passed its second factor may (admin.client()'s is one).
    made = admin.client().post("/api/v1/tokens", {"name": "more"}, format="json")
    assert made.status_code == 201, made.content
    assert ApiToken.objects.get(pk=made.json()["id"]).second_factor is True


# ---- resets ------------------------------------------------------------------------------------


def test_an_operator_resets_a_lost_second_factor_and_it_is_audited(admin, make_caller):
    enrol_totp(admin.user)
    operator = make_caller(None, operator=True)
    url = f"/api/v1/admin/users/{admin.user.pk}/mfa-reset"

    assert APIClient().post(url).status_code == 401
    assert admin.client().post(url).status_code == 403
    assert TOTPDevice.objects.filter(user=admin.user).exists()
    assert operator.client().post("/api/v1/admin/users/999999/mfa-reset").status_code == 404

    assert operator.client().post(url).status_code == 204
    assert not TOTPDevice.objects.filter(user=admin.user).exists()
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.target_id, event.details) == (
        "mfa.reset",
        str(admin.user.pk),
        {"by": "operator"},
    )


def test_removing_your_own_second_factor_needs_a_verified_session(admin):
    client = Client()
    login(client, admin.user.username)
    enrol(client)
    assert client.delete("/api/v1/auth/mfa").status_code == 204
    assert not TOTPDevice.objects.filter(user=admin.user).exists()
    # The session is no longer verified, and MFA is still required of an admin.
    assert client.get("/api/v1/keypairs").json()["error"]["code"] == "mfa_required"
