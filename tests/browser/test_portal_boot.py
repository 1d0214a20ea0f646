"""The portal in a real browser on the real hypervisor (the hypervisor lane): a tenant admin
signs in with a TOTP code, boots an instance from the create form and watches it become
active without reloading the page, reads its console (the guest's ready line), stops it and
deletes it; an operator signs in to the console and sees the host's capacity change after
the boot; a reader sees no button that would be refused and is refused if it posts anyway.
Screenshots of the main pages (French) are taken on the way (docs/portal/)."""

from __future__ import annotations

import re
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command
from playwright.sync_api import expect

from compute.models import Flavor, Instance
from hosts.models import Host
from iaas.celery import app, host_queue
from images.models import Image
from tenants.models import Role
from tests.support import hypervisor_lab
from tests.support.browser import screenshot, sign_in
from tests.support.callers import PASSWORD
from tests.support.local_host import onboarded_local_host
from tests.support.mfa import enrol_totp

pytestmark = [
    pytest.mark.browser,
    pytest.mark.hypervisor,
    pytest.mark.django_db(transaction=True),
]
HOST = "e2e-portal"


@pytest.fixture
def real_host(settings):
    with onboarded_local_host(settings, HOST, "fr-portal-1") as host:
        yield host


def vcpus_used(page) -> int:
    cell = page.locator(f'tr[data-host="{HOST}"] td[data-resource="vcpus"]')
    return int(cell.get_attribute("data-used") or "-1")


def test_a_tenant_boots_watches_reads_stops_and_deletes_from_the_portal(
    real_host: Host, new_context, live_server, make_tenant, make_caller, ssh_public_keys
):
    call_command(
        "image_import", "andromede-test", str(hypervisor_lab.ensure_test_image()),
        "--disk-format", "qcow2", "--public",
    )  # fmt: skip
    assert Image.objects.get(name="andromede-test").status == "active"
    Flavor.objects.create(name="tiny", vcpus=1, memory_mb=256, disk_gb=1)
    tenant = make_tenant("acme")
    admin = make_caller(tenant, Role.ADMIN)
    reader = make_caller(tenant, Role.READER)
    operator = make_caller(None, operator=True)
    admin_device, operator_device = enrol_totp(admin.user), enrol_totp(operator.user)
    admin.client().post(
        "/api/v1/keypairs",
        {"name": "laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
    )

    ops = new_context("fr").new_page()
    sign_in(ops, live_server, operator.user.username, PASSWORD, operator_device,
            path="/ops/login/")  # fmt: skip
    ops.goto(f"{live_server.url}/ops/")
    assert vcpus_used(ops) == 0

    page = new_context("fr").new_page()
    sign_in(page, live_server, admin.user.username, PASSWORD, admin_device)
    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        page.goto(f"{live_server.url}/t/acme/instances/new/")
        screenshot(page, "instance-create")
        page.locator("#id_name").fill("web-1")
        page.locator("#id_keypair").select_option(label="laptop")
        page.locator("#id_user_data").fill("#cloud-config\nruncmd: [echo hello]\n")
        started = time.monotonic()
        page.get_by_role("button", name="Créer l'instance").click()
        page.wait_for_url(re.compile(r"/t/acme/instances/[0-9a-f-]{36}/$"))
        instance = Instance.objects.get(tenant=tenant, name="web-1")
        # The page is never reloaded from here: a marker set in this document must survive
        # until the status says active (htmx swaps the status block in place).
        page.evaluate("() => { window.__notReloaded = true; }")
        expect(page.locator("#instance-status")).to_have_attribute(
            "data-status", "active", timeout=180_000
        )
        assert page.evaluate("() => window.__notReloaded === true")
        print(f"\nportal: create → active shown in {time.monotonic() - started:.1f} s")
        screenshot(page, "instance-detail")

        ops.reload()
        assert vcpus_used(ops) == 1
        screenshot(ops, "operator-console")

        page.get_by_role("link", name="Console").first.click()
        ready = f"ANDROMEDE-READY instance-id={instance.pk}"
        expect(page.locator("#console-output")).to_contain_text(ready, timeout=120_000)
        screenshot(page, "instance-console")

        reading = new_context("fr").new_page()
        sign_in(reading, live_server, reader.user.username, PASSWORD)
        reading.goto(f"{live_server.url}/t/acme/instances/{instance.pk}/")
        assert reading.get_by_role("button", name="Arrêter").count() == 0
        assert reading.get_by_role("link", name="Supprimer").count() == 0
        token = reading.context.cookies()
        csrf = next(c["value"] for c in token if c["name"] == "csrftoken")
        refused = reading.request.post(
            f"{live_server.url}/t/acme/instances/{instance.pk}/stop/",
            headers={"X-CSRFToken": csrf, "Referer": live_server.url + "/"},
        )
        assert refused.status == 403
        instance.refresh_from_db()
        assert (instance.status, instance.task_state) == ("active", None)

        page.goto(f"{live_server.url}/t/acme/instances/{instance.pk}/")
        page.get_by_role("button", name="Arrêter").click()
        expect(page.locator("#instance-status")).to_have_attribute(
            "data-status", "stopped", timeout=120_000
        )
        page.get_by_role("link", name="Supprimer").click()
        screenshot(page, "instance-delete-confirm")
        page.get_by_role("button", name="La supprimer").click()
        page.wait_for_url(f"{live_server.url}/t/acme/instances/")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            instance.refresh_from_db()
            if instance.status == "deleted":
                break
            time.sleep(0.5)
        assert instance.status == "deleted"
        ops.reload()
        assert vcpus_used(ops) == 0
