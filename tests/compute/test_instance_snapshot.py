"""Snapshot on libvirt's fake hypervisor (test:///default): the API takes an active or stopped
instance by a conditional update and creates a private `saving` image in the same
transaction (409 `wrong_state`, 403 quota, 400 bad body otherwise, and then nothing
changed); the worker powers a running guest off, copies the root disk into a standalone
volume, stores it in the image store (the same inspection as an upload), removes the copy
and boots the guest again. The fake keeps no data, so its stored file is an empty qcow2 of
the disk's size; the real lane (tests/e2e) boots a new instance from a real snapshot."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from compute.models import Instance
from compute.worker.snapshot import copy_root_disk, run_snapshot
from hosts.hypervisors import hypervisor_for
from hosts.naming import storage_pool as pool_name
from hypervisor.base import NotFound
from iaas.models import AuditEvent
from images.models import Image
from operations.models import Operation
from operations.services.deadlines import fail_overdue_operations as fail_stuck_operations
from operations.services.runs import LeaseLost
from operations.worker import run_operation
from tenants import services as tenant_services
from tests.factories import SYSTEM
from tests.support.instance_api import (
    active_instance,
    create,
    create_building,
    run_verb,
    shown,
    verb,
)

GIB = 1024**3


@pytest.fixture(autouse=True)
def store(settings: Any, image_store: Path) -> Path:
    """Each test has an image store of its own (where `cloud`'s public image is too)."""
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 2
    return image_store


def snapshot(client, instance_id: str, name: str = "web-1-snap", **headers: str):
    url = f"/api/v1/instances/{instance_id}/snapshot"
    return client.post(url, {"name": name}, format="json", **headers)


def copy_exists(cloud, image_id: str) -> bool:
    try:
        hypervisor_for(cloud.host).storage_volume_info(
            pool_name(cloud.host.name, "instances"), f"snapshot-{image_id}"
        )
    except NotFound:
        return False
    return True


@pytest.mark.django_db
@pytest.mark.parametrize("stopped_first", [False, True])
def test_snapshot_makes_a_private_image_a_new_instance_boots_from(cloud, store, stopped_first):
    instance_id = active_instance(cloud)
    if stopped_first:
        run_verb(cloud.client, instance_id, "stop")
    answer = snapshot(cloud.client, instance_id)
    assert answer.status_code == 202, answer.content
    body = answer.json()
    image = body["image"]
    assert (image["status"], image["visibility"], image["disk_format"]) == (
        "saving", "private", "qcow2",
    )  # fmt: skip
    assert (image["source_instance"], image["min_disk_gb"]) == (instance_id, 1)
    assert body["operation"]["action"] == "instance.snapshot"
    expected_status = "stopped" if stopped_first else "active"
    assert shown(cloud.client, instance_id)[:2] == (expected_status, "snapshotting")
    # The image cannot be deleted, nor given a file, while the snapshot fills it.
    assert cloud.client.delete(f"/api/v1/images/{image['id']}").status_code == 409

    assert run_operation(body["operation"]["id"]) == "succeeded"
    operation = cloud.client.get(f"/api/v1/operations/{body['operation']['id']}").json()
    steps = ["copy_disk", "store_image", "remove_copy"]
    if not stopped_first:
        steps = ["shutdown", "wait_shutoff", *steps, "start", "wait_running"]
    assert [s["name"] for s in operation["steps"]] == steps
    power = "shutoff" if stopped_first else "running"
    assert shown(cloud.client, instance_id) == (expected_status, None, power)

    saved = cloud.client.get(f"/api/v1/images/{image['id']}").json()
    assert saved["status"] == "active", saved
    assert saved["virtual_size_bytes"] == GIB  # the flavor's disk
    stored = (store / image["id"]).read_bytes()
    assert saved["size_bytes"] == len(stored)
    assert saved["checksum_sha256"] == hashlib.sha256(stored).hexdigest()
    assert stored.startswith(b"QFI\xfb")  # a qcow2
    assert not copy_exists(cloud, image["id"])  # the copy on the host is gone
    assert not list(store.glob("*.part"))
    listed = cloud.client.get("/api/v1/images", {"visibility": "private"}).json()["results"]
    assert [i["id"] for i in listed] == [image["id"]]
    for action in ("image.create", "instance.snapshot", "image.snapshot_saved"):
        assert AuditEvent.objects.filter(action=action, outcome="success").exists(), action

    booted = create(cloud.client, Image.objects.get(pk=image["id"]), name="from-snap").json()
    assert run_operation(booted["operation"]["id"]) == "succeeded"
    assert shown(cloud.client, booted["instance"]["id"]) == ("active", None, "running")
    assert booted["instance"]["image"] == image["id"]


@pytest.mark.django_db
def test_a_redelivered_or_restarted_snapshot_is_idempotent(cloud, store):
    instance_id = active_instance(cloud)
    body = snapshot(cloud.client, instance_id).json()
    image_id = body["image"]["id"]
    # A worker that died after copying left a copy behind: the next one makes it again.
    instance = Instance.objects.select_related("host").get(pk=instance_id)
    copy_root_disk(hypervisor_for(cloud.host), instance, Image.objects.get(pk=image_id))
    assert copy_exists(cloud, image_id)
    assert run_operation(body["operation"]["id"]) == "succeeded"
    assert run_operation(body["operation"]["id"]) == "skipped"
    checksum = Image.objects.get(pk=image_id).checksum_sha256
    # A worker that died after its last step, before it could finish the operation: once its
    # lease expires the next one runs every step again: no second file, no change, guest
    # running.
    Operation.objects.filter(pk=body["operation"]["id"]).update(
        status="running", finished_at=None, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert run_operation(body["operation"]["id"]) == "succeeded"
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.checksum_sha256) == ("active", checksum)
    assert sorted(p.name for p in store.iterdir()) == sorted([image_id, str(cloud.image.pk)])
    assert not copy_exists(cloud, image_id)
    assert shown(cloud.client, instance_id) == ("active", None, "running")


@pytest.mark.django_db
def test_an_idempotency_key_replays_the_first_answer(cloud):
    instance_id = active_instance(cloud)
    first = snapshot(cloud.client, instance_id, HTTP_IDEMPOTENCY_KEY="snap-1")
    again = snapshot(cloud.client, instance_id, HTTP_IDEMPOTENCY_KEY="snap-1")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["image"]["id"] == first.json()["image"]["id"]
    assert Image.objects.filter(source_instance_id=instance_id).count() == 1
    assert Operation.objects.filter(action="instance.snapshot").count() == 1


def _assert_refused(client, instance_id: str, body: Any, status: int, code: str | None) -> None:
    before = Instance.objects.values("status", "task_state").get(pk=instance_id)
    images, operations = Image.objects.count(), Operation.objects.count()
    answer = client.post(f"/api/v1/instances/{instance_id}/snapshot", body, format="json")
    assert answer.status_code == status, answer.content
    if code:
        assert answer.json()["error"]["code"] == code, answer.content
    assert Instance.objects.values("status", "task_state").get(pk=instance_id) == before
    assert (Image.objects.count(), Operation.objects.count()) == (images, operations)


@pytest.mark.django_db
def test_refusals_change_nothing(cloud, make_tenant, make_caller):
    body = {"name": "snap"}
    _assert_refused(cloud.client, create_building(cloud), body, 409, "wrong_state")

    instance_id = active_instance(cloud)
    assert verb(cloud.client, instance_id, "stop").status_code == 202  # another verb runs
    _assert_refused(cloud.client, instance_id, body, 409, "wrong_state")
    # The ORM: lets the stop the worker never ran end, so the next refusals start idle.
    Instance.objects.filter(pk=instance_id).update(task_state=None)
    refused = AuditEvent.objects.filter(action="instance.snapshot", outcome="refused")
    assert refused.latest("created_at").details["code"] == "wrong_state"

    tenant_services.quota_set(actor=SYSTEM, tenant=cloud.tenant, resource="images", limit=0)
    _assert_refused(cloud.client, instance_id, body, 403, "quota_exceeded")
    tenant_services.quota_set(actor=SYSTEM, tenant=cloud.tenant, resource="images", limit=10)

    reader = make_caller(cloud.tenant, "reader").client()
    _assert_refused(reader, instance_id, body, 403, None)
    other = make_caller(make_tenant("other"), "admin").client()
    _assert_refused(other, instance_id, body, 404, None)
    bad_bodies: list[Any] = [
        {},
        {"name": ""},
        {"name": "bad/name"},
        {"name": 7},
        {"name": "s", "x": 1},
        [],
    ]
    for strict in bad_bodies:
        _assert_refused(cloud.client, instance_id, strict, 400, None)


@pytest.mark.django_db
def test_a_failed_snapshot_errors_the_image_and_boots_the_guest_again(cloud, store):
    instance_id = active_instance(cloud)
    body = snapshot(cloud.client, instance_id).json()
    image_id = body["image"]["id"]
    # The root disk vanished under the instance (an operator's mistake): the copy fails.
    hypervisor_for(cloud.host).delete_storage_volume(
        pool_name(cloud.host.name, "instances"), f"instance-{instance_id}-root", wipe=False
    )
    assert run_operation(body["operation"]["id"]) == "failed"
    image = cloud.client.get(f"/api/v1/images/{image_id}").json()
    assert image["status"] == "error"
    assert image["error_message"].startswith("The snapshot failed:")
    instance = cloud.client.get(f"/api/v1/instances/{instance_id}").json()
    assert (instance["status"], instance["task_state"], instance["power_state"]) == (
        "active", None, "running",
    )  # fmt: skip
    assert instance["fault"].startswith("The snapshot failed: ")
    operation = Operation.objects.get(pk=body["operation"]["id"])
    assert operation.steps[-1] == operation.steps[-1] | {"name": "copy_disk", "status": "failed"}
    assert not copy_exists(cloud, image_id)
    assert [p.name for p in store.glob("*")] == [str(cloud.image.pk)]  # the public image's
    assert AuditEvent.objects.filter(action="image.snapshot_saved", outcome="failed").exists()
    # The tenant deletes the failed image; its quota room comes back.
    assert cloud.client.delete(f"/api/v1/images/{image_id}").status_code == 204


@pytest.mark.django_db
def test_a_snapshot_stuck_past_its_deadline_fails_its_image_too(cloud, settings, store):
    instance_id = active_instance(cloud)
    body = snapshot(cloud.client, instance_id).json()
    Operation.objects.filter(pk=body["operation"]["id"]).update(
        created_at=timezone.now() - settings.OPERATION_DEADLINE - timedelta(seconds=1)
    )
    assert fail_stuck_operations() == [body["operation"]["id"]]
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "error"
    assert "stopped by the reconciler" in image.error_message
    assert shown(cloud.client, instance_id)[:2] == ("active", None)
    # The operation is over: it is not leased again.
    assert run_operation(body["operation"]["id"]) == "skipped"
    # A worker that was still running it when the reconciler gave up stores nothing: the
    # image stays in error, its copy on the host goes, the guest runs again.
    operation = Operation.objects.get(pk=body["operation"]["id"])
    with pytest.raises(LeaseLost):  # and it learns that the operation is no longer its own
        run_snapshot(operation, Instance.objects.select_related("host").get(pk=instance_id))
    assert Operation.objects.get(pk=operation.pk).status == "failed"
    assert Image.objects.get(pk=image.pk).status == "error"
    assert [p.name for p in store.iterdir()] == [str(cloud.image.pk)]  # the public image's
    assert not copy_exists(cloud, str(image.pk))
    assert shown(cloud.client, instance_id) == ("active", None, "running")
