"""Rebuild on libvirt's fake hypervisor (test:///default): the API takes an active or stopped
instance by a conditional update (409 `wrong_state` otherwise); the worker lays a fresh root
disk on the new image and boots it with the same identity, address and MAC."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from compute.models import Instance
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from hosts.naming import storage_pool as pool_name
from iaas.models import AuditEvent
from images.models import Image
from network.models import Port
from operations.models import Operation
from operations.worker import run_operation
from tests import factories
from tests.support.instance_api import (
    active_instance,
    create,
    create_building,
    run_verb,
    shown,
    verb,
)


@pytest.fixture
def other_image(image_store: Path, tiny_qcow2: Path):
    """other_image(name, tenant=…, min_disk_gb=…) → another active image (public unless a
    tenant is given); other_image(…, upload=False) → one still queued."""

    def make(name: str = "andromede-test-2", *, upload: bool = True, **fields) -> Image:
        return factories.image(name=name, file=tiny_qcow2 if upload else None, **fields)

    return make


def identity(instance_id: str) -> tuple[str, str, str]:
    port = Port.objects.get(device_id=instance_id)
    return port.fixed_ips.get().ip, port.mac, str(Instance.objects.get(pk=instance_id).host_id)


@pytest.mark.django_db
@pytest.mark.parametrize("stopped_first", [False, True])
def test_rebuild_boots_the_new_image_with_the_same_identity(
    cloud, settings, stopped_first, other_image
):
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 2
    instance_id = active_instance(cloud)
    if stopped_first:
        run_verb(cloud.client, instance_id, "stop")
        assert shown(cloud.client, instance_id)[0] == "stopped"
    hv = hypervisor_for(cloud.host)
    before = identity(instance_id)
    shown_before = cloud.client.get(f"/api/v1/instances/{instance_id}").json()
    image = other_image()

    done = run_verb(cloud.client, instance_id, "rebuild", {"image": str(image.pk)})
    assert [s["name"] for s in done["steps"]] == [
        "destroy", "cache_image", "root_disk", "seed", "network", "define", "start",
        "wait_running",
    ]  # fmt: skip
    body = cloud.client.get(f"/api/v1/instances/{instance_id}").json()
    assert (body["status"], body["task_state"], body["power_state"]) == ("active", None, "running")
    assert body["image"] == str(image.pk)
    assert body["ip"] == shown_before["ip"]
    assert (body["name"], body["flavor"]) == (shown_before["name"], shown_before["flavor"])
    assert identity(instance_id) == before
    # The same domain (name), running, on a root overlay backed by the new image.
    assert instance_id in [d.name for d in hv.list_domains()]
    assert hv.domain_info(instance_id).power_state == "running"
    assert hv.storage_volume_info(pool_name(cloud.host.name, "images"), f"image-{image.pk}")
    assert hv.storage_volume_info(
        pool_name(cloud.host.name, "instances"), f"instance-{instance_id}-root"
    )
    event = AuditEvent.objects.get(action="instance.rebuild", outcome="success")
    assert event.details["image"] == str(image.pk)


@pytest.mark.django_db
def test_a_redelivered_rebuild_is_idempotent(cloud, other_image):
    instance_id = active_instance(cloud)
    image = other_image()
    answer = verb(cloud.client, instance_id, "rebuild", {"image": str(image.pk)})
    assert answer.status_code == 202, answer.content
    operation_id = answer.json()["operation"]["id"]
    assert run_operation(operation_id) == "succeeded"
    assert run_operation(operation_id) == "skipped"
    # A worker that died after its last step, before it could finish the operation: once its
    # lease expires the next worker runs every step again; all are idempotent.
    Operation.objects.filter(pk=operation_id).update(
        status="running", finished_at=None, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert run_operation(operation_id) == "succeeded"
    assert Operation.objects.get(pk=operation_id).attempts == 2
    assert shown(cloud.client, instance_id) == ("active", None, "running")
    assert str(Instance.objects.get(pk=instance_id).image_id) == str(image.pk)


def _assert_refused(cloud, client, instance_id: str, body: dict, status: int, code: str | None):
    before = Instance.objects.values("status", "task_state", "image_id").get(pk=instance_id)
    operations_before = Operation.objects.count()
    answer = verb(client, instance_id, "rebuild", body)
    assert answer.status_code == status, answer.content
    if code:
        assert answer.json()["error"]["code"] == code, answer.content
    assert Instance.objects.values("status", "task_state", "image_id").get(pk=instance_id) == before
    assert Operation.objects.count() == operations_before


@pytest.mark.django_db
def test_refusals_change_nothing(cloud, make_tenant, make_caller, other_image):
    image = other_image()
    body = {"image": str(image.pk)}
    building = create_building(cloud)
    _assert_refused(cloud, cloud.client, building, body, 409, "wrong_state")

    instance_id = active_instance(cloud)
    # Another verb in progress.
    assert verb(cloud.client, instance_id, "stop").status_code == 202
    _assert_refused(cloud, cloud.client, instance_id, body, 409, "wrong_state")
    # The ORM: lets the stop the worker never ran end, so the next refusals start idle.
    Instance.objects.filter(pk=instance_id).update(task_state=None)
    event = AuditEvent.objects.filter(action="instance.rebuild", outcome="refused").latest(
        "created_at"
    )
    assert event.details["code"] == "wrong_state"

    reader = make_caller(cloud.tenant, "reader").client()
    _assert_refused(cloud, reader, instance_id, body, 403, None)
    other = make_caller(make_tenant("other"), "admin").client()
    _assert_refused(cloud, other, instance_id, body, 404, None)

    unknown = {"image": str(uuid.uuid4())}
    _assert_refused(cloud, cloud.client, instance_id, unknown, 400, "unknown_image")
    private = other_image("theirs", tenant=make_tenant("third"))
    _assert_refused(
        cloud, cloud.client, instance_id, {"image": str(private.pk)}, 400, "unknown_image"
    )
    big = other_image("big", min_disk_gb=50)
    _assert_refused(
        cloud, cloud.client, instance_id, {"image": str(big.pk)}, 400, "flavor_too_small"
    )
    queued = other_image("queued", upload=False)
    _assert_refused(
        cloud, cloud.client, instance_id, {"image": str(queued.pk)}, 409, "image_not_active"
    )
    for strict in ({}, {"image": "nope"}, {"image": str(image.pk), "keep_disk": True}):
        _assert_refused(cloud, cloud.client, instance_id, strict, 400, None)


@pytest.mark.django_db
def test_a_failed_rebuild_leaves_an_error_with_a_fault_and_keeps_the_address(cloud, other_image):
    instance_id = active_instance(cloud)
    before = identity(instance_id)
    image = other_image()
    answer = verb(cloud.client, instance_id, "rebuild", {"image": str(image.pk)})
    Host.objects.filter(pk=cloud.host.pk).update(
        libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    )
    operation_id = answer.json()["operation"]["id"]
    assert run_operation(operation_id) == "failed"
    instance = Instance.objects.get(pk=instance_id)
    assert (instance.status, instance.task_state) == ("error", None)
    assert instance.fault.startswith("The rebuild failed: ")
    # Tenants read faults: no host name, path or connection URI in them (review L2).
    assert "h01" not in instance.fault
    assert "/nonexistent" not in instance.fault
    assert "qemu+unix" not in instance.fault
    assert identity(instance_id) == before  # allocation and address kept
    operation = Operation.objects.get(pk=operation_id)
    assert operation.status == "failed"
    assert operation.error
    assert operation.steps[-1]["status"] == "failed"
    assert AuditEvent.objects.filter(action="instance.rebuild", outcome="failed").exists()
    # In error it can still be deleted.
    Host.objects.filter(pk=cloud.host.pk).update(libvirt_uri="test:///default")
    assert cloud.client.delete(f"/api/v1/instances/{instance_id}").status_code == 202


@pytest.mark.django_db
def test_an_image_cannot_be_deleted_while_an_instance_is_built_from_it(cloud, other_image):
    private = other_image("mine", tenant=cloud.tenant)
    url = f"/api/v1/images/{private.pk}"
    created = create(cloud.client, private, name="web-p").json()

    def refused() -> None:
        answer = cloud.client.delete(url)
        assert answer.status_code == 409, answer.content
        assert answer.json()["error"]["code"] == "image_in_use"
        assert Image.objects.get(pk=private.pk).status == "active"

    refused()  # building
    assert run_operation(created["operation"]["id"]) == "succeeded"
    instance_id = active_instance(cloud)
    answer = verb(cloud.client, instance_id, "rebuild", {"image": str(private.pk)})
    assert answer.status_code == 202, answer.content
    refused()  # a rebuild from it is queued
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    # Built: running instances keep their host's cached copy; the image may go.
    assert cloud.client.delete(url).status_code == 204
    assert AuditEvent.objects.filter(action="image.delete", outcome="refused").count() == 2
