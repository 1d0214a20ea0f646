"""Attaching volumes to instances and detaching them, through the API, on libvirt's fake
hypervisor (test:///default). The fake cannot hot-plug devices (the driver says
`Unsupported`; tests/hypervisor/test_hypervisor_disks.py): the first test shows such an
attach failing cleanly; the others stand in for the device change where noted. A real
guest that sees its volume is tests/e2e/test_volume_attach.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from compute.models import Instance
from compute.worker.steps import domain_spec
from hosts import naming
from hypervisor.base import TransientError
from hypervisor.libvirt import LibvirtHypervisor
from iaas.models import AuditEvent
from network.selectors import device_ports
from operations.models import Operation
from operations.worker import run_operation
from tests import factories
from tests.support.api_checks import assert_error
from tests.support.instance_api import active_instance, create_building
from volumes.models import Volume, VolumeAttachment

pytestmark = pytest.mark.django_db


@pytest.fixture
def vcloud(cloud: SimpleNamespace) -> SimpleNamespace:
    """The `cloud` (tests/conftest.py) with the public volume type `standard`."""
    cloud.volume_type = factories.volume_type("standard", max_size_gb=100)
    return cloud


@pytest.fixture
def plugs(monkeypatch: pytest.MonkeyPatch) -> None:
    """libvirt's fake cannot attach devices (Unsupported): here the attach is taken as done,
    so the rest of the path (states, attachment, definition, detach, delete) runs."""
    monkeypatch.setattr(LibvirtHypervisor, "attach_disk", lambda self, name, disk: None)


def new_volume(cloud: SimpleNamespace, name: str = "data") -> str:
    answer = cloud.client.post("/api/v1/volumes", {"name": name, "size_gb": 2}, format="json")
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    return str(answer.json()["volume"]["id"])


def attach(client: Any, instance_id: str, volume_id: str) -> Any:
    return client.post(
        f"/api/v1/instances/{instance_id}/volumes", {"volume": volume_id}, format="json"
    )


def detach(client: Any, instance_id: str, volume_id: str) -> Any:
    return client.delete(f"/api/v1/instances/{instance_id}/volumes/{volume_id}")


def volume_shown(client: Any, volume_id: str) -> dict[str, Any]:
    return dict(client.get(f"/api/v1/volumes/{volume_id}").json())


def attached(cloud: SimpleNamespace, instance_id: str, volume_id: str) -> dict[str, Any]:
    """Attach (the `plugs` fixture standing in for the device change); the volume shown."""
    answer = attach(cloud.client, instance_id, volume_id)
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    return volume_shown(cloud.client, volume_id)


def snapshot() -> tuple[list[tuple[Any, ...]], int, int]:
    """What a refused request must leave as it was."""
    volumes = list(Volume.objects.order_by("id").values_list("id", "status", "fault"))
    return volumes, VolumeAttachment.objects.count(), Operation.objects.count()


def test_an_attach_the_fake_cannot_do_is_shown_then_fails_cleanly(vcloud):
    instance_id = active_instance(vcloud)
    volume_id = new_volume(vcloud)
    other_id = new_volume(vcloud, "other")

    answer = attach(vcloud.client, instance_id, volume_id)
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["operation"]["action"] == "instance.attach_volume"
    assert body["volume"]["status"] == "attaching"
    assert body["volume"]["attachment"]["instance"] == instance_id
    assert body["volume"]["attachment"]["device"] == "vdb"
    listed = vcloud.client.get(f"/api/v1/instances/{instance_id}/volumes").json()
    assert [v["id"] for v in listed] == [volume_id]
    task_state = vcloud.client.get(f"/api/v1/instances/{instance_id}").json()["task_state"]
    assert task_state == "attaching_vol"
    # One verb at a time on an instance: a second attach waits for the first.
    assert_error(attach(vcloud.client, instance_id, other_id), 409, "wrong_state")
    assert (
        AuditEvent.objects.filter(action="instance.attach_volume", outcome="success").count() == 1
    )

    assert run_operation(body["operation"]["id"]) == "failed"
    volume = volume_shown(vcloud.client, volume_id)
    assert (volume["status"], volume["attachment"]) == ("available", None)
    assert volume["fault"].startswith("The attach failed")
    instance = vcloud.client.get(f"/api/v1/instances/{instance_id}").json()
    assert (instance["status"], instance["task_state"]) == ("active", None)
    assert instance["fault"].startswith("The attach_volume failed")
    assert vcloud.client.get(f"/api/v1/instances/{instance_id}/volumes").json() == []
    assert not VolumeAttachment.objects.filter(detached_at__isnull=True).exists()


def test_attached_volumes_get_devices_in_order_and_stay_in_the_definition(vcloud, plugs):
    instance_id = active_instance(vcloud)
    first, second = new_volume(vcloud), new_volume(vcloud, "logs")
    shown = attached(vcloud, instance_id, first)
    assert (shown["status"], shown["fault"], shown["attachment"]["device"]) == ("in-use", "",
                                                                                "vdb")  # fmt: skip
    assert attached(vcloud, instance_id, second)["attachment"]["device"] == "vdc"
    listed = vcloud.client.get(f"/api/v1/instances/{instance_id}/volumes").json()
    assert [(v["id"], v["attachment"]["device"]) for v in listed] == [
        (first, "vdb"), (second, "vdc"),
    ]  # fmt: skip
    # A redefinition of the domain (rebuild, resize) keeps them.
    instance = Instance.objects.select_related("host").get(pk=instance_id)
    disks = domain_spec(instance, device_ports(instance.pk)).disks
    assert [(d.target, d.volume) for d in disks] == [
        ("vda", naming.root_disk(instance_id)), ("sda", naming.seed(instance_id)),
        ("vdb", naming.volume(first)), ("vdc", naming.volume(second)),
    ]  # fmt: skip
    assert {d.pool for d in disks[2:]} == {"andromede-h01-volumes"}

    # Detached: available again, its device free for the next one.
    answer = detach(vcloud.client, instance_id, first)
    assert answer.status_code == 202, answer.content
    assert volume_shown(vcloud.client, first)["status"] == "detaching"
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    volume = volume_shown(vcloud.client, first)
    assert (volume["status"], volume["attachment"]) == ("available", None)
    assert attached(vcloud, instance_id, first)["attachment"]["device"] == "vdb"


def test_refused_attaches_change_nothing(vcloud, plugs, make_tenant, make_caller):
    instance_id = active_instance(vcloud)
    volume_id = new_volume(vcloud)
    other = make_caller(make_tenant("globex"), "member").client()
    theirs = other.post("/api/v1/volumes", {"name": "theirs", "size_gb": 1}, format="json")
    their_volume = theirs.json()["volume"]["id"]
    building = create_building(vcloud)
    creating = vcloud.client.post("/api/v1/volumes", {"name": "new", "size_gb": 1},
                                  format="json").json()["volume"]["id"]  # fmt: skip
    before = snapshot()

    assert_error(attach(vcloud.client, instance_id, their_volume), 404, "volume_not_found")
    assert_error(attach(other, instance_id, their_volume), 404, "not_found")
    assert_error(attach(vcloud.client, instance_id, "not-a-uuid"), 400, "invalid")
    assert_error(attach(vcloud.client, building, volume_id), 409, "wrong_state")
    assert_error(attach(vcloud.client, instance_id, creating), 409, "wrong_state")
    assert_error(detach(vcloud.client, instance_id, volume_id), 409, "volume_not_attached")
    assert_error(detach(vcloud.client, instance_id, their_volume), 404, "volume_not_found")
    assert snapshot() == before
    assert vcloud.client.get(f"/api/v1/instances/{instance_id}").json()["task_state"] is None

    # Attached to one instance: not to a second one, not deleted, not detached elsewhere.
    attached(vcloud, instance_id, volume_id)
    second = active_instance(vcloud, "web-2")
    before = snapshot()
    error = assert_error(attach(vcloud.client, second, volume_id), 409, "volume_in_use")
    assert error["details"]["instance"] == instance_id
    assert_error(detach(vcloud.client, second, volume_id), 409, "volume_not_attached")
    assert_error(vcloud.client.delete(f"/api/v1/volumes/{volume_id}"), 409, "wrong_state")
    assert snapshot() == before
    assert vcloud.client.get(f"/api/v1/instances/{second}").json()["task_state"] is None


def test_a_volume_on_another_host_is_refused(vcloud, plugs):
    instance_id = active_instance(vcloud)
    volume_id = new_volume(vcloud)
    # Its storage on a second host of the zone (placement chose h01, the only one then).
    Volume.objects.filter(pk=volume_id).update(host=factories.host("h02", vcloud.zone))
    before = snapshot()
    error = assert_error(attach(vcloud.client, instance_id, volume_id), 409, "volume_on_other_host")
    assert error["details"] == {"volume_type": "standard", "backend": "dir"}
    assert snapshot() == before


def test_deleting_an_instance_detaches_its_volumes_and_keeps_them(vcloud, plugs):
    instance_id = active_instance(vcloud)
    volume_id = new_volume(vcloud)
    attached(vcloud, instance_id, volume_id)
    deleted = vcloud.client.delete(f"/api/v1/instances/{instance_id}")
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    volume = volume_shown(vcloud.client, volume_id)
    assert (volume["status"], volume["attachment"]) == ("available", None)
    assert VolumeAttachment.objects.get(volume_id=volume_id).detached_at is not None
    # Free for another instance.
    assert attached(vcloud, active_instance(vcloud, "web-2"), volume_id)["status"] == "in-use"


def test_a_detach_the_guest_refuses_keeps_the_volume_in_use_with_a_fault(
    vcloud, plugs, monkeypatch
):
    instance_id = active_instance(vcloud)
    volume_id = new_volume(vcloud)
    attached(vcloud, instance_id, volume_id)

    def refuses(self: Any, name: str, target: str, timeout_seconds: float = 20.0) -> None:
        # What the driver says of a guest that ignores the unplug request (the real lane
        # shows it: tests/hypervisor/test_hypervisor_disks.py).
        raise TransientError(f"detach disk {target}: the guest has not released it within 20 s")

    monkeypatch.setattr(LibvirtHypervisor, "detach_disk", refuses)
    answer = detach(vcloud.client, instance_id, volume_id)
    assert run_operation(answer.json()["operation"]["id"]) == "failed"
    volume = volume_shown(vcloud.client, volume_id)
    assert (volume["status"], volume["attachment"]["instance"]) == ("in-use", instance_id)
    assert "has not released it" in volume["fault"]
    instance = vcloud.client.get(f"/api/v1/instances/{instance_id}").json()
    assert instance["task_state"] is None
    assert "has not released it" in instance["fault"]

    monkeypatch.undo()  # the guest lets go now (the fake has no such disk: a no-op)
    answer = detach(vcloud.client, instance_id, volume_id)
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    volume = volume_shown(vcloud.client, volume_id)
    assert (volume["status"], volume["fault"], volume["attachment"]) == ("available", "", None)


def test_an_in_use_volume_extends_and_stays_in_use(vcloud, plugs):
    instance_id = active_instance(vcloud)
    volume_id = new_volume(vcloud)
    attached(vcloud, instance_id, volume_id)
    answer = vcloud.client.post(f"/api/v1/volumes/{volume_id}/extend", {"size_gb": 3},
                                format="json")  # fmt: skip
    assert answer.status_code == 202, answer.content
    assert_error(detach(vcloud.client, instance_id, volume_id), 409, "wrong_state")
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    volume = volume_shown(vcloud.client, volume_id)
    assert (volume["status"], volume["size_gb"]) == ("in-use", 3)
    assert volume["attachment"]["device"] == "vdb"


def test_an_attach_abandoned_past_its_deadline_leaves_the_volume_attached(vcloud):
    """A worker that never finished the attach (it died, its host was lost): whether the
    disk is plugged in is unknown, so the volume stays attached, `in-use` with the reason,
    and a detach frees it (never `available` while a guest may hold it)."""
    from datetime import timedelta

    from django.utils import timezone

    from operations.services.deadlines import fail_overdue_operations

    instance_id = active_instance(vcloud)
    volume_id = new_volume(vcloud)
    answer = attach(vcloud.client, instance_id, volume_id).json()
    Operation.objects.filter(pk=answer["operation"]["id"]).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    assert fail_overdue_operations() == [answer["operation"]["id"]]
    volume = volume_shown(vcloud.client, volume_id)
    assert (volume["status"], volume["attachment"]["instance"]) == ("in-use", instance_id)
    assert volume["fault"]
    assert vcloud.client.get(f"/api/v1/instances/{instance_id}").json()["task_state"] is None

    answer = detach(vcloud.client, instance_id, volume_id)
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    volume = volume_shown(vcloud.client, volume_id)
    assert (volume["status"], volume["fault"], volume["attachment"]) == ("available", "", None)
