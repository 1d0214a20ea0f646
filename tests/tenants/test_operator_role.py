"""Review L7: `is_staff` alone is not an operator. The operators' API and operator tokens ask
for the dedicated `tenants.operate_cloud` permission, and a tenant member made staff gains
nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from iaas.audit import Actor
from iaas.errors import PermissionDeniedError
from iaas.models import AuditEvent
from tenants import services
from tenants.models import ApiToken, Role
from tenants.operators import is_operator
from tests.support.mfa import sign_in_verified

User = get_user_model()
SYSTEM = Actor.system("test")
PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_staff_account_without_the_operator_permission_is_refused_by_the_operator_api(db):
    user = User.objects.create_user("staffonly", password=PASSWORD, is_staff=True)
    client = sign_in_verified(APIClient(), user)

    response = client.get("/api/v1/admin/tenants")

    assert response.status_code == 403
    assert client.get("/api/v1/me").json()["is_operator"] is False


def test_a_staff_account_without_the_permission_gets_no_operator_token(db):
    user = User.objects.create_user("staffonly", password=PASSWORD, is_staff=True)
    before = ApiToken.objects.count()

    with pytest.raises(PermissionDeniedError, match="Only operator accounts"):
        services.token_create(
            actor=SYSTEM, user=user, tenant=None, name="x", role=None, session_passed_mfa=True
        )

    assert ApiToken.objects.count() == before


def test_a_granted_operator_uses_the_operator_api(db):
    User.objects.create_user("ops", password=PASSWORD)
    call_command("operator_grant", "ops")
    user = User.objects.get(username="ops")
    _, secret = services.token_create(
        actor=SYSTEM, user=user, tenant=None, name="x", role=None, session_passed_mfa=True
    )

    assert is_operator(user)
    assert _bearer(secret).get("/api/v1/admin/tenants").status_code == 200
    assert AuditEvent.objects.filter(action="operator.grant", target_id=str(user.pk)).exists()


def test_a_tenant_member_made_staff_gains_nothing(acme, make_caller):
    """The attack: an admin-side mistake (or a compromised admin account) ticks `is_staff`
    and gives the operator permission to a tenant member; its tokens stay tenant tokens and
    the operator API stays closed."""
    member = make_caller(acme, Role.ADMIN)
    permission = Permission.objects.get(codename="operate_cloud")
    member.user.is_staff = True
    member.user.save()
    member.user.user_permissions.add(permission)

    assert not is_operator(User.objects.get(pk=member.user.pk))
    assert member.client().get("/api/v1/admin/tenants").status_code == 403
    with pytest.raises(PermissionDeniedError, match="Only operator accounts"):
        services.token_create(
            actor=SYSTEM,
            user=member.user,
            tenant=None,
            name="x",
            role=None,
            session_passed_mfa=True,
        )


def test_granting_operator_to_a_tenant_member_is_refused_and_changes_nothing(acme, make_caller):
    member = make_caller(acme, Role.MEMBER)

    with pytest.raises(CommandError, match="Tenant members cannot be operators"):
        call_command("operator_grant", member.user.username)

    user = User.objects.get(pk=member.user.pk)
    assert not user.is_staff
    assert not user.user_permissions.exists()


def test_an_operator_token_stops_working_when_the_permission_is_withdrawn(db, make_caller):
    operator = make_caller(None, operator=True)
    assert operator.client().get("/api/v1/admin/tenants").status_code == 200

    operator.user.user_permissions.clear()

    assert operator.client().get("/api/v1/admin/tenants").status_code == 401


@pytest.mark.parametrize(
    ("allowed_hosts", "secure"),
    [("cloud.example.fr", "True"), ("127.0.0.1,localhost", "False")],
)
def test_cookies_are_secure_by_default_outside_loopback(allowed_hosts, secure, tmp_path):
    """Review L7: secure cookies and HSTS were off unless asked for. A deployment that serves
    a real host name gets them by default; the loopback-only embedded default (`make run`,
    plain HTTP on 127.0.0.1) does not need them."""
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_ALLOWED_HOSTS": allowed_hosts,
        "ANDROMEDE_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "x" * 50,
        "PYTHONPATH": str(ROOT),
    }
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, bool(s.SECURE_HSTS_SECONDS), "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "DJANGO_SETTINGS_MODULE": "iaas.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    ).stdout.split()

    assert out == [secure, secure, secure, secure]
