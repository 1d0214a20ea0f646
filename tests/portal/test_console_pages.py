"""The operator console: operators only (everyone else gets a 404), with a second factor;
it shows each host's capacity as placement sees it, failed operations with their reason,
tenants and their quotas, and keeps the audit chain's verifications."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from iaas.models import AuditVerification
from operations.models import Operation
from operations.worker import run_operation
from tenants.models import Role
from tests.support.instance_api import create
from tests.support.mfa import sign_in_verified

pytestmark = pytest.mark.django_db
PAGES = ["/ops/", "/ops/operations/", "/ops/tenants/", "/ops/orphans/", "/ops/audit/"]


def operator_client(make_caller) -> Client:
    client = Client()
    client.cookies["andromede_language"] = "en"
    return sign_in_verified(client, make_caller(None, operator=True).user)


def test_only_operators_with_their_second_factor_see_the_console(cloud, make_caller):
    admin_of_acme = make_caller(cloud.tenant, Role.ADMIN)
    tenant_admin = sign_in_verified(Client(), admin_of_acme.user)
    unverified = Client()
    unverified.force_login(make_caller(None, operator=True).user)
    operator = operator_client(make_caller)

    for page in PAGES:
        assert operator.get(page).status_code == 200, page
        assert tenant_admin.get(page).status_code == 404, page
        assert unverified.get(page)["Location"] == "/account/mfa/", page
    assert tenant_admin.post("/ops/audit/verify/").status_code == 404
    assert not AuditVerification.objects.exists()
    assert operator.get("/")["Location"] == "/ops/"


def vcpus_used(page: str, host: str) -> str:
    row = page.split(f'data-host="{host}"', 1)[1].split("</tr>", 1)[0]
    return row.split('data-resource="vcpus" data-used="', 1)[1].split('"', 1)[0]


def test_a_hosts_capacity_follows_placement(cloud, make_caller):
    operator = operator_client(make_caller)
    before = operator.get("/ops/").content.decode()

    created = create(cloud.client, cloud.image).json()
    after = operator.get("/ops/").content.decode()

    assert vcpus_used(before, "h01") == "0"
    assert vcpus_used(after, "h01") == "1"  # the flavor `small`: 1 vCPU, claimed at once
    assert "<svg" in after
    assert "Capacity used per host in fr-par-1" in after
    assert run_operation(created["operation"]["id"]) == "succeeded"


def test_failed_operations_show_their_reason(cloud, make_caller):
    created = create(cloud.client, cloud.image).json()
    Operation.objects.filter(pk=created["operation"]["id"]).update(
        status="failed", error="libvirt said: no space left", finished_at=timezone.now()
    )
    operator = operator_client(make_caller)

    page = operator.get("/ops/operations/").content.decode()

    assert "libvirt said: no space left" in page
    assert "acme" in page


def test_verify_now_records_the_verification(cloud, make_caller):
    operator = operator_client(make_caller)

    answer = operator.post("/ops/audit/verify/", follow=True)

    verification = AuditVerification.objects.get()
    assert verification.ok
    assert verification.events_checked > 0
    assert verification.by.startswith("op")
    assert "intact" in answer.content.decode()


def test_operators_sign_in_on_their_own_page_with_their_code(cloud, make_caller):
    from tests.support.callers import PASSWORD
    from tests.support.mfa import current_code, enrol_totp

    operator = make_caller(None, operator=True).user
    device = enrol_totp(operator)
    tenant_admin = make_caller(cloud.tenant, Role.ADMIN).user
    client = Client()
    client.cookies["andromede_language"] = "en"

    assert client.get("/ops/")["Location"] == "/ops/login/?next=/ops/"
    alone = client.post("/ops/login/", {"username": operator.username, "password": PASSWORD})
    assert alone.status_code == 200  # the code is required
    tenant = client.post(
        "/ops/login/",
        {"username": tenant_admin.username, "password": PASSWORD,
         "otp_token": current_code(enrol_totp(tenant_admin))},
    )  # fmt: skip
    assert tenant.status_code == 200  # a tenant account is not an operator
    signed = client.post(
        "/ops/login/",
        {"username": operator.username, "password": PASSWORD, "otp_token": current_code(device)},
    )
    assert signed["Location"] == "/ops/"
    assert client.get("/ops/").status_code == 200
