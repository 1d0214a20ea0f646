"""Zones and hosts: onboarding through the operator API (libvirt's test:///default driver as
the hypervisor), operator states, heartbeats, and who may call what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from hosts.models import Host, StoragePool, Zone
from hosts.services import heartbeats, zones
from iaas.audit import Actor
from iaas.models import AuditEvent

pytestmark = pytest.mark.django_db
TEST_URI = "test:///default"


@pytest.fixture
def operator(make_caller):
    return make_caller(None, operator=True)


@pytest.fixture
def zone(db) -> Zone:
    return zones.zone_create(
        actor=Actor.system("tests"),
        region="fr-par",
        name="fr-par-1",
        site="DC Paris 1",
        city="Paris",
        country="FR",
        jurisdiction="FR",
        certifications=["SecNumCloud"],
    )


def onboard(client: APIClient, **overrides):
    body = {
        "name": "h01",
        "zone": "fr-par-1",
        "libvirt_uri": TEST_URI,
        "storage_root": "/var/lib/andromede-test",
    } | overrides
    return client.post("/api/v1/admin/hosts", body, format="json")


def test_operator_creates_a_zone_with_its_jurisdiction(operator):
    answer = operator.client().post(
        "/api/v1/admin/zones",
        {"region": "fr-par", "name": "fr-par-2", "site": "DC2", "city": "Paris",
         "country": "fr", "jurisdiction": "fr", "certifications": ["HDS"]},
        format="json",
    )  # fmt: skip
    assert answer.status_code == 201, answer.content
    assert answer.json()["jurisdiction"] == "FR"
    assert answer.json()["region"] == "fr-par"
    assert AuditEvent.objects.filter(action="zone.create", outcome="success").count() == 1


def test_onboarding_records_facts_pools_and_an_audit_event(operator, zone):
    answer = onboard(operator.client())
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["state"] == "enabled"
    assert body["zone"] == "fr-par-1"
    assert body["jurisdiction"] == "FR"
    assert body["domain_type"] == "test"  # what libvirt's test driver offers
    # What confines the guests, as libvirt reports it (the test driver has its own model).
    assert body["security_driver"] == "testSecurity"
    assert body["cpus"] > 0
    assert body["memory_mb"] > 0
    assert body["libvirt_version"]
    assert {p["role"] for p in body["storage_pools"]} == {"images", "instances", "volumes"}
    assert {p["path"] for p in body["storage_pools"]} == {
        "/var/lib/andromede-test/images",
        "/var/lib/andromede-test/instances",
        "/var/lib/andromede-test/volumes",
    }
    event = AuditEvent.objects.get(action="host.create")
    assert event.target_label == "h01"
    assert event.outcome == "success"
    assert event.details["security_driver"] == "testSecurity"


def test_a_second_host_with_the_same_name_is_a_conflict(operator, zone):
    assert onboard(operator.client()).status_code == 201
    again = onboard(operator.client())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_exists"
    assert Host.objects.count() == 1


@pytest.mark.parametrize("name", ["H01", "a b", "x/y", "", "h" * 64, "h01;rm"])
def test_a_host_name_that_cannot_name_a_queue_is_refused(operator, zone, name):
    answer = onboard(operator.client(), name=name)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid"
    assert Host.objects.count() == 0


def test_an_unreachable_libvirt_is_a_clear_error_and_creates_nothing(operator, zone):
    answer = onboard(
        operator.client(), libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] in {"libvirt_unreachable", "libvirt_error"}
    assert "qemu+unix:///system" in error["message"]
    assert Host.objects.count() == 0
    assert StoragePool.objects.count() == 0
    refused = AuditEvent.objects.filter(action="host.onboard", outcome="refused")
    assert refused.count() == 1  # one specific event, not a second generic one
    assert not AuditEvent.objects.filter(action="host.create").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("libvirt_uri", "http://example.org/"),
        ("storage_root", "relative/path"),
        ("storage_root", "/var/../etc"),
        ("expected_fingerprint", "MD5:aa:bb"),
        ("domain_type", "xen"),
        ("ssh_port", 70000),
    ],
)
def test_bad_host_fields_are_refused(operator, zone, field, value):
    answer = onboard(operator.client(), **{field: value})
    assert answer.status_code == 400
    assert field in answer.json()["error"]["details"]
    assert Host.objects.count() == 0


def test_an_unknown_zone_is_refused(operator, zone):
    answer = onboard(operator.client(), zone="de-fra-1")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "unknown_zone"


def test_only_operators_reach_the_inventory(make_tenant, make_caller, zone):
    tenant = make_tenant("acme")
    admin = make_caller(tenant, "admin")
    for path in ["/api/v1/admin/hosts", "/api/v1/admin/zones"]:
        assert admin.client().get(path).status_code == 403
        assert APIClient().get(path).status_code == 401
    assert onboard(admin.client()).status_code == 403
    assert Host.objects.count() == 0


def test_operators_disable_with_a_reason_maintain_and_enable(operator, zone):
    client = operator.client()
    host_id = onboard(client).json()["id"]
    no_reason = client.post(f"/api/v1/admin/hosts/{host_id}/disable", {}, format="json")
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["code"] == "reason_required"
    assert Host.objects.get(pk=host_id).state == "enabled"

    disabled = client.post(
        f"/api/v1/admin/hosts/{host_id}/disable", {"reason": "RAM errors"}, format="json"
    )
    assert disabled.status_code == 200
    assert (disabled.json()["state"], disabled.json()["state_reason"]) == ("disabled", "RAM errors")
    maintained = client.post(f"/api/v1/admin/hosts/{host_id}/maintenance", {}, format="json")
    assert maintained.json()["state"] == "maintenance"
    enabled = client.post(f"/api/v1/admin/hosts/{host_id}/enable", {}, format="json")
    assert (enabled.json()["state"], enabled.json()["state_reason"]) == ("enabled", "")
    actions = list(
        AuditEvent.objects.filter(target_id=host_id, outcome="success")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["host.create", "host.disabled", "host.maintenance", "host.enable"]


def test_heartbeats_refresh_facts_mark_silent_hosts_down_and_bring_them_back(operator, zone):
    host_id = onboard(operator.client()).json()["id"]
    Host.objects.filter(pk=host_id).update(
        cpus=1, last_heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert heartbeats.hosts_mark_down_missed() == ["h01"]
    host = Host.objects.get(pk=host_id)
    assert (host.state, host.state_reason) == ("down", "missed heartbeats")
    assert AuditEvent.objects.filter(action="host.down", target_id=host_id).count() == 1

    assert heartbeats.host_heartbeat(host_id) is True
    host.refresh_from_db()
    assert host.state == "enabled"
    assert host.cpus > 1  # refreshed from libvirt
    assert host.last_heartbeat_at is not None
    assert host.last_heartbeat_at > timezone.now() - timedelta(minutes=1)
    assert AuditEvent.objects.filter(action="host.up", target_id=host_id).count() == 1


def test_a_failing_heartbeat_is_recorded_without_changing_the_operators_state(operator, zone):
    host_id = onboard(operator.client()).json()["id"]
    Host.objects.filter(pk=host_id).update(
        state="maintenance", libvirt_uri="qemu+unix:///system?socket=/nonexistent/sock"
    )
    assert heartbeats.host_heartbeat(host_id) is False
    host = Host.objects.get(pk=host_id)
    assert host.state == "maintenance"
    assert host.last_heartbeat_error
    Host.objects.filter(pk=host_id).update(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    assert heartbeats.hosts_mark_down_missed() == []  # only enabled hosts go down


# --- Onboarding over SSH, against a real sshd on 127.0.0.1 (tests/support/sshd.py) -----------


@pytest.fixture
def sshd_host(fresh_local_sshd, settings):
    """The control plane's SSH key is the client key the test sshd authorises."""
    settings.SSH_PRIVATE_KEY = fresh_local_sshd.client_key_path
    settings.SSH_CONNECT_TIMEOUT_SECONDS = 3
    return fresh_local_sshd


def test_ssh_onboarding_pins_the_expected_key_and_prepares_storage(
    operator, zone, sshd_host, tmp_path
):
    root = tmp_path / "storage"
    answer = onboard(
        operator.client(),
        ssh_host="127.0.0.1",
        ssh_port=sshd_host.port,
        expected_fingerprint=sshd_host.host_key_fingerprint,
        storage_root=str(root),
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["ssh_host_key_fingerprint"] == sshd_host.host_key_fingerprint
    # made over SSH by the host's own shell, not by this process
    assert sorted(p.name for p in root.iterdir()) == ["images", "instances", "volumes"]
    assert "Accepted publickey" in sshd_host.log_text()


def test_ssh_onboarding_without_a_fingerprint_pins_the_key_first_seen(
    operator, zone, sshd_host, tmp_path
):
    answer = onboard(
        operator.client(), ssh_host="127.0.0.1", ssh_port=sshd_host.port, storage_root=str(tmp_path)
    )
    assert answer.status_code == 201, answer.content
    host = Host.objects.get(name="h01")
    assert host.ssh_host_key_fingerprint == sshd_host.host_key_fingerprint
    event = AuditEvent.objects.get(action="host.create")
    assert event.details["ssh_host_key_fingerprint"] == sshd_host.host_key_fingerprint


def test_a_changed_host_key_is_refused_audited_and_gets_no_credentials(
    operator, zone, sshd_host, tmp_path
):
    pinned = sshd_host.host_key_fingerprint
    sshd_host.restart(new_host_key=True)
    mark = sshd_host.log_mark()
    answer = onboard(
        operator.client(),
        ssh_host="127.0.0.1",
        ssh_port=sshd_host.port,
        expected_fingerprint=pinned,
        storage_root=str(tmp_path / "never"),
    )
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "host_key_mismatch"
    assert error["details"] == {"expected": pinned, "presented": sshd_host.host_key_fingerprint}
    assert Host.objects.count() == 0
    assert not (tmp_path / "never").exists()
    assert "Accepted publickey" not in sshd_host.log_text(since=mark)
    refused = AuditEvent.objects.get(action="host.onboard", outcome="refused")
    assert refused.details["code"] == "host_key_mismatch"
    assert refused.details["presented"] == sshd_host.host_key_fingerprint
    assert refused.actor_id == operator.user.pk


def test_an_unreachable_ssh_host_is_a_clear_error(operator, zone, sshd_host, tmp_path):
    port = sshd_host.port
    sshd_host.stop()
    answer = onboard(
        operator.client(), ssh_host="127.0.0.1", ssh_port=port, storage_root=str(tmp_path)
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "host_unreachable"
    assert f"127.0.0.1:{port}" in error["message"]
    assert Host.objects.count() == 0
    assert AuditEvent.objects.filter(action="host.onboard", outcome="refused").count() == 1


def test_a_host_that_refuses_our_key_says_which_key_to_install(
    operator, zone, sshd_host, tmp_path, settings
):
    from tests.support.sshd import keygen

    settings.SSH_PRIVATE_KEY = keygen(tmp_path / "stranger")
    answer = onboard(
        operator.client(), ssh_host="127.0.0.1", ssh_port=sshd_host.port, storage_root=str(tmp_path)
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "ssh_authentication_failed"
    assert "authorized_keys" in error["message"]
    assert Host.objects.count() == 0
