"""Lifecycle verbs (start, stop, reboot) on libvirt's fake hypervisor (test:///default): the
API takes the instance by a conditional update (409 `wrong_state` otherwise), the worker
drives the domain and records the outcome."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from compute.models import Instance
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from iaas.models import AuditEvent
from operations.models import Operation
from operations.worker import run_operation
from tests import factories
from tests.support.instance_api import active_instance, create, run_verb, shown, verb
from tests.support.live_http import post_json


@pytest.mark.django_db
def test_stop_then_start_then_reboot_soft_and_hard(cloud, settings):
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 2
    instance_id = active_instance(cloud)
    hv = hypervisor_for(cloud.host)

    stop = run_verb(cloud.client, instance_id, "stop")
    assert [s["name"] for s in stop["steps"]] == ["shutdown", "wait_shutoff"]
    assert shown(cloud.client, instance_id) == ("stopped", None, "shutoff")
    assert hv.domain_info(instance_id).power_state == "shutoff"

    start = run_verb(cloud.client, instance_id, "start")
    assert [s["name"] for s in start["steps"]] == ["start", "wait_running"]
    assert shown(cloud.client, instance_id) == ("active", None, "running")
    assert hv.domain_info(instance_id).power_state == "running"

    soft = run_verb(cloud.client, instance_id, "reboot")  # soft by default
    assert [s["name"] for s in soft["steps"]] == ["reboot_soft", "wait_running"]
    assert shown(cloud.client, instance_id) == ("active", None, "running")

    hard = run_verb(cloud.client, instance_id, "reboot", {"type": "hard"})
    assert [s["name"] for s in hard["steps"]] == ["reboot_hard", "wait_running"]
    assert shown(cloud.client, instance_id) == ("active", None, "running")
    assert hv.domain_info(instance_id).power_state == "running"

    history = cloud.client.get(f"/api/v1/instances/{instance_id}/operations").json()
    assert [(op["action"], op["status"]) for op in history] == [
        ("instance.create", "succeeded"),
        ("instance.stop", "succeeded"),
        ("instance.start", "succeeded"),
        ("instance.reboot", "succeeded"),
        ("instance.reboot", "succeeded"),
    ]
    audited = list(
        AuditEvent.objects.filter(target_id=instance_id, outcome="success")
        .order_by("created_at")
        .values_list("action", flat=True)
    )
    assert audited == [
        "instance.create",
        "instance.stop",
        "instance.start",
        "instance.reboot",
        "instance.reboot",
    ]
    reboots = AuditEvent.objects.filter(action="instance.reboot").order_by("created_at")
    assert [e.details["type"] for e in reboots] == ["soft", "hard"]


@pytest.mark.django_db
def test_a_redelivered_verb_is_a_no_op(cloud):
    instance_id = active_instance(cloud)
    answer = verb(cloud.client, instance_id, "stop")
    operation_id = answer.json()["operation"]["id"]
    assert run_operation(operation_id) == "succeeded"
    assert run_operation(operation_id) == "skipped"
    # The worker's handler itself is idempotent: running a start twice on the domain is fine.
    answer = verb(cloud.client, instance_id, "start")
    operation = Operation.objects.get(pk=answer.json()["operation"]["id"])
    hypervisor_for(cloud.host).start_domain(instance_id)  # already started (e.g. a retry)
    assert run_operation(str(operation.pk)) == "succeeded"
    assert shown(cloud.client, instance_id) == ("active", None, "running")


def _assert_refused(cloud, instance_id: str, name: str, body: dict | None = None) -> None:
    before = Instance.objects.values("status", "task_state", "power_state").get(pk=instance_id)
    operations_before = Operation.objects.count()
    answer = verb(cloud.client, instance_id, name, body)
    assert answer.status_code == 409, (name, answer.content)
    assert answer.json()["error"]["code"] == "wrong_state"
    after = Instance.objects.values("status", "task_state", "power_state").get(pk=instance_id)
    assert after == before
    assert Operation.objects.count() == operations_before
    event = AuditEvent.objects.filter(action=f"instance.{name}", outcome="refused").latest(
        "created_at"
    )
    assert event.details["code"] == "wrong_state"
    assert event.target_id == instance_id


@pytest.mark.django_db
def test_verbs_in_the_wrong_state_are_409s_that_change_nothing(cloud):
    building = create(cloud.client, cloud.image, name="web-b").json()["instance"]["id"]
    for name in ("start", "stop", "reboot"):
        _assert_refused(cloud, building, name)

    instance_id = active_instance(cloud)
    _assert_refused(cloud, instance_id, "start")  # already active
    run_verb(cloud.client, instance_id, "stop")
    _assert_refused(cloud, instance_id, "stop")  # already stopped
    _assert_refused(cloud, instance_id, "reboot", {"type": "hard"})  # a stopped one
    # A verb in progress (task_state set) blocks every other one.
    assert verb(cloud.client, instance_id, "start").status_code == 202
    _assert_refused(cloud, instance_id, "start")
    assert Instance.objects.get(pk=instance_id).task_state == "starting"

    deleting = active_instance(cloud, "web-d")
    assert cloud.client.delete(f"/api/v1/instances/{deleting}").status_code == 202
    for name in ("start", "stop", "reboot"):
        _assert_refused(cloud, deleting, name)


@pytest.mark.django_db
def test_bodies_are_strict(cloud):
    instance_id = active_instance(cloud)
    for name, body in (
        ("stop", {"force": True}),
        ("start", {"x": 1}),
        ("reboot", {"type": "warm"}),
        ("reboot", {"type": "soft", "hard": True}),
    ):
        answer = verb(cloud.client, instance_id, name, body)
        assert answer.status_code == 400, (name, body, answer.content)
    assert Operation.objects.count() == 1
    assert Instance.objects.get(pk=instance_id).task_state is None


@pytest.mark.django_db
def test_readers_are_refused_and_other_tenants_see_nothing(cloud, make_tenant, make_caller):
    instance_id = active_instance(cloud)
    reader = make_caller(cloud.tenant, "reader").client()
    other = make_caller(make_tenant("other"), "admin").client()
    for name in ("start", "stop", "reboot"):
        answer = verb(reader, instance_id, name)
        assert answer.status_code == 403, answer.content
        assert verb(other, instance_id, name).status_code == 404
    assert Operation.objects.count() == 1
    assert shown(cloud.client, instance_id) == ("active", None, "running")
    refused = AuditEvent.objects.filter(outcome="refused").values_list("action", flat=True)
    assert {"instance.start", "instance.stop", "instance.reboot"} <= set(refused)


@pytest.mark.django_db
def test_a_driver_failure_keeps_the_status_and_says_why(cloud):
    instance_id = active_instance(cloud)
    answer = verb(cloud.client, instance_id, "stop")
    # A new URI means a new driver, which cannot reach any libvirtd.
    Host.objects.filter(pk=cloud.host.pk).update(
        libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    )
    assert run_operation(answer.json()["operation"]["id"]) == "failed"
    instance = Instance.objects.get(pk=instance_id)
    assert (instance.status, instance.task_state) == ("active", None)
    assert "stop failed: " in instance.fault
    operation = Operation.objects.get(pk=answer.json()["operation"]["id"])
    assert operation.status == "failed"
    assert operation.error
    assert operation.steps[-1]["status"] == "failed"
    assert AuditEvent.objects.filter(action="instance.stop", outcome="failed").exists()
    # The instance is idle again: a new verb is accepted (and a success clears the fault).
    Host.objects.filter(pk=cloud.host.pk).update(libvirt_uri="test:///default")
    run_verb(cloud.client, instance_id, "reboot", {"type": "hard"})
    assert Instance.objects.get(pk=instance_id).fault == ""


@pytest.mark.django_db
def test_a_failed_start_leaves_the_instance_stopped(cloud):
    instance_id = active_instance(cloud)
    run_verb(cloud.client, instance_id, "stop")
    answer = verb(cloud.client, instance_id, "start")
    Host.objects.filter(pk=cloud.host.pk).update(
        libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    )
    assert run_operation(answer.json()["operation"]["id"]) == "failed"
    instance = Instance.objects.get(pk=instance_id)
    assert (instance.status, instance.task_state) == ("stopped", None)
    assert instance.fault.startswith("The start failed")


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_stops_exactly_one_wins(
    live_server, make_tenant, make_caller, image_store, tiny_qcow2
):
    host = factories.host("h1", factories.zone("fr-par-1"))
    factories.flavor("small", vcpus=1, memory_mb=256, disk_gb=1)
    image = factories.public_image(tiny_qcow2, "img")
    caller = make_caller(make_tenant("acme"), "member")
    body = {"name": "vm-1", "flavor": "small", "image": str(image.pk)}
    created = caller.client().post("/api/v1/instances", body, format="json").json()
    assert run_operation(created["operation"]["id"]) == "succeeded"
    instance_id = created["instance"]["id"]
    assert Instance.objects.get(pk=instance_id).host == host

    for verbs in (("stop", "stop"), ("start", "start"), ("stop", "reboot")):
        barrier = threading.Barrier(len(verbs))

        def one(name: str, barrier: threading.Barrier = barrier) -> tuple[int, dict]:
            barrier.wait(timeout=30)
            url = f"{live_server.url}/api/v1/instances/{instance_id}/{name}"
            return post_json(url, caller.token, {})

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(verbs)) as pool:
            results = list(pool.map(one, verbs))
        statuses = sorted(status for status, _ in results)
        assert statuses == [202, 409], (verbs, results)
        loser = next(body for status, body in results if status == 409)
        assert loser["error"]["code"] == "wrong_state"
        winner = next(body for status, body in results if status == 202)
        assert run_operation(winner["operation"]["id"]) == "succeeded"
        assert Instance.objects.get(pk=instance_id).task_state is None
    # stop, start, then the stop-or-reboot race
    assert Operation.objects.filter(target_id=instance_id).count() == 4
