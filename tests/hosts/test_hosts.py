"""Zones and hosts: onboarding through the operator API (libvirt's test:///default driver as
the hypervisor), operator states, heartbeats, and who may call what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from hosts.libvirt_uris import check_libvirt_uri
from hosts.models import Host, StoragePool, Zone
from hosts.services import heartbeats, zones
from hosts.services.onboarding import host_onboarding_resend, host_onboarding_run
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
    """POST a host: the API records it pending and answers at once (a worker onboards it)."""
    body = {
        "name": "h01",
        "zone": "fr-par-1",
        "libvirt_uri": TEST_URI,
        "storage_root": "/var/lib/andromede-test",
    } | overrides
    return client.post("/api/v1/admin/hosts", body, format="json")


def run_worker(host_id: str) -> str:
    """What the control queue's worker does with the task the API sent (hosts.onboard)."""
    return host_onboarding_run(host_id)


def onboarded(client: APIClient, **overrides):
    """POST, let the worker run, then GET the host as the operator sees it."""
    answer = onboard(client, **overrides)
    assert answer.status_code == 202, answer.content
    run_worker(answer.json()["id"])
    return client.get(f"/api/v1/admin/hosts/{answer.json()['id']}")


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


def test_onboarding_answers_at_once_with_a_pending_host_a_worker_enables(operator, zone):
    client = operator.client()
    answer = onboard(client)
    assert answer.status_code == 202, answer.content
    assert answer.json()["state"] == "pending"
    assert answer.json()["storage_pools"] == []
    assert run_worker(answer.json()["id"]) == "enabled"
    body = client.get(f"/api/v1/admin/hosts/{answer.json()['id']}").json()
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
    requested = AuditEvent.objects.get(action="host.create")
    assert (requested.target_label, requested.outcome) == ("h01", "success")
    assert requested.details["state"] == "pending"
    event = AuditEvent.objects.get(action="host.onboard")
    assert (event.target_label, event.outcome) == ("h01", "success")
    assert event.details["security_driver"] == "testSecurity"


def test_a_second_host_with_the_same_name_is_a_conflict(operator, zone):
    assert onboard(operator.client()).status_code == 202
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


def test_an_unreachable_libvirt_leaves_the_host_in_error_with_a_clear_reason(operator, zone):
    client = operator.client()
    body = onboarded(
        client, libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    ).json()
    assert body["state"] == "error"
    assert body["onboarding_error_code"] in {"libvirt_unreachable", "libvirt_error"}
    assert "qemu+unix:///system" in body["state_reason"]
    assert StoragePool.objects.count() == 0
    refused = AuditEvent.objects.filter(action="host.onboard", outcome="refused")
    assert refused.count() == 1
    assert refused.get().details["code"] == body["onboarding_error_code"]
    assert not AuditEvent.objects.filter(action="host.onboard", outcome="success").exists()
    # nothing places work on it, and an operator cannot enable it by hand
    enable = client.post(f"/api/v1/admin/hosts/{body['id']}/enable", {}, format="json")
    assert enable.status_code == 409
    assert Host.objects.get(pk=body["id"]).state == "error"


def test_a_failed_onboarding_is_retried_on_the_operators_word(operator, zone):
    client = operator.client()
    body = onboarded(
        client, libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    ).json()
    Host.objects.filter(pk=body["id"]).update(libvirt_uri=TEST_URI)  # the operator fixed it
    retried = client.post(f"/api/v1/admin/hosts/{body['id']}/retry", {}, format="json")
    assert retried.status_code == 202, retried.content
    assert retried.json()["state"] == "pending"
    assert run_worker(body["id"]) == "enabled"
    again = client.post(f"/api/v1/admin/hosts/{body['id']}/retry", {}, format="json")
    assert again.status_code == 409
    assert Host.objects.get(pk=body["id"]).state == "enabled"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("libvirt_uri", "http://example.org/"),
        ("libvirt_uri", "qemu+tcp://h2.example/system"),
        ("libvirt_uri", "qemu://h2.example/system"),
        ("libvirt_uri", "qemu+ext:///system?command=/bin/nc"),
        ("libvirt_uri", "qemu+tls://h2.example/system?no_verify=1"),
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


def test_qemu_tcp_is_refused_with_a_clear_reason_and_nothing_recorded(operator, zone):
    since = AuditEvent.objects.count()
    answer = onboard(
        operator.client(), libvirt_uri="qemu+tcp://h2.example/system", ssh_host="h2.example"
    )
    assert answer.status_code == 400
    [message] = answer.json()["error"]["details"]["libvirt_uri"]
    assert "qemu+tcp is refused" in message
    assert "qemu+ssh://" in message
    assert Host.objects.count() == 0
    assert not AuditEvent.objects.filter(action="host.create", outcome="success").exists()
    assert AuditEvent.objects.count() == since + 1  # the refused attempt, nothing else


@pytest.mark.parametrize(
    ("uri", "ssh_host", "words"),
    [
        ("qemu+ssh://root@h2.example/system", "", "needs ssh_host"),
        ("qemu+ssh://root@h2.example/system", "h3.example", "make them agree"),
        ("qemu+ssh://root@h2.example/system?no_verify=1", "h2.example", "known_hosts"),
        ("qemu+ssh://root@h2.example/system?keyfile=/tmp/k", "h2.example", "key file"),
    ],
)
def test_a_qemu_ssh_uri_must_be_pinnable(operator, zone, uri, ssh_host, words):
    answer = onboard(operator.client(), libvirt_uri=uri, ssh_host=ssh_host)
    assert answer.status_code == 400
    assert words in answer.json()["error"]["details"]["libvirt_uri"][0]
    assert Host.objects.count() == 0


def test_the_fake_hypervisor_is_refused_unless_the_tests_allow_it(operator, zone, settings):
    settings.ALLOW_TEST_HYPERVISOR = False
    answer = onboard(operator.client())
    assert answer.status_code == 400
    assert "test driver" in answer.json()["error"]["details"]["libvirt_uri"][0]
    assert Host.objects.count() == 0


def test_the_local_daemon_without_network_stays_allowed(operator, zone):
    for uri in ["qemu:///system", "qemu+unix:///system?socket=/run/libvirt/libvirt-sock"]:
        check_libvirt_uri(uri, ssh_host="", ssh_port=22, ssh_username="root")


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
    host_id = onboarded(client).json()["id"]
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
    assert actions == [
        "host.create",
        "host.onboard",
        "host.disabled",
        "host.maintenance",
        "host.enable",
    ]


def test_heartbeats_refresh_facts_mark_silent_hosts_down_and_bring_them_back(operator, zone):
    host_id = onboarded(operator.client()).json()["id"]
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
    host_id = onboarded(operator.client()).json()["id"]
    Host.objects.filter(pk=host_id).update(
        state="maintenance", libvirt_uri="qemu+unix:///system?socket=/nonexistent/sock"
    )
    assert heartbeats.host_heartbeat(host_id) is False
    host = Host.objects.get(pk=host_id)
    assert host.state == "maintenance"
    assert host.last_heartbeat_error
    Host.objects.filter(pk=host_id).update(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    assert heartbeats.hosts_mark_down_missed() == []  # only enabled hosts go down


def test_a_pending_host_nobody_picked_up_is_sent_to_a_worker_again(operator, zone):
    """The broker may have been down when the API answered: the beat sends it again."""
    host_id = onboard(operator.client()).json()["id"]
    assert host_onboarding_resend() == []  # just sent: not yet
    Host.objects.filter(pk=host_id).update(created_at=timezone.now() - timedelta(minutes=5))
    assert host_onboarding_resend() == ["h01"]
    assert run_worker(host_id) == "enabled"
    assert host_onboarding_resend() == []
