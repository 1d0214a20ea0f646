"""Instances that boot from a volume (issue 11 item 4), through the API, on libvirt's fake
hypervisor: the root disk is a volume attached at vda (a new one copied from the image, or an
existing one), kept or deleted with the instance as the request said. A real guest booting
from a volume is tests/e2e/test_volume_snapshots.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from compute.models import Instance
from compute.worker.steps import domain_spec
from hosts import naming
from network.selectors import device_ports
from operations.models import Operation
from operations.worker import run_operation
from tenants import services as tenant_services
from tests import factories
from tests.factories import SYSTEM
from tests.support.api_checks import assert_error
from tests.support.instance_api import verb
from volumes.models import Volume, VolumeAttachment

pytestmark = pytest.mark.django_db
POOL = naming.storage_pool("h01", "volumes")


@pytest.fixture
def vcloud(cloud: SimpleNamespace) -> SimpleNamespace:
    cloud.volume_type = factories.volume_type("standard", max_size_gb=100)
    return cloud


def boot(client: Any, boot_volume: dict[str, Any], **body: Any) -> Any:
    return client.post(
        "/api/v1/instances",
        {"name": "vm-1", "flavor": "small", "keypair": "laptop", "boot_volume": boot_volume} | body,
        format="json",
    )


def operations_of(target_id: str) -> list[Operation]:
    return list(Operation.objects.filter(target_id=target_id).order_by("created_at"))


def state() -> tuple[Any, ...]:
    return (
        list(Volume.objects.order_by("id").values_list("id", "status")),
        list(Instance.objects.order_by("id").values_list("id", "status")),
        VolumeAttachment.objects.count(),
        Operation.objects.count(),
    )


def usage(client: Any) -> dict[str, int]:
    lines = client.get("/api/v1/quotas").json()["results"]
    return {line["resource"]: line["usage"] for line in lines
            if line["resource"] in ("instances", "disk_gb", "volumes", "volume_gb")}  # fmt: skip


def test_boot_from_a_new_volume_copied_from_the_image_then_delete_keeps_it(vcloud):
    answer = boot(vcloud.client, {"image": str(vcloud.image.pk), "size_gb": 3})
    assert answer.status_code == 202, answer.content
    instance = answer.json()["instance"]
    root = Volume.objects.get(name="vm-1-root")
    assert (root.status, root.size_gb, root.source_image_id) == ("creating", 3, vcloud.image.pk)
    # The volume is made by its own operation, then the build boots from it.
    [volume_op] = operations_of(str(root.pk))
    assert run_operation(str(volume_op.pk)) == "succeeded"
    assert Volume.objects.get(pk=root.pk).status == "in-use"  # attached from the start
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    shown = vcloud.client.get(f"/api/v1/instances/{instance['id']}").json()
    assert shown["status"] == "active"
    steps = Operation.objects.get(pk=answer.json()["operation"]["id"]).steps
    assert [s["name"] for s in steps][:2] == ["boot_volume", "seed"]  # no root disk copied
    volumes = vcloud.client.get(f"/api/v1/instances/{instance['id']}/volumes").json()
    assert [(v["id"], v["attachment"]["device"]) for v in volumes] == [(str(root.pk), "vda")]
    spec = domain_spec(Instance.objects.get(pk=instance["id"]), device_ports(instance["id"]))
    assert (spec.disks[0].target, spec.disks[0].pool, spec.disks[0].volume) == (
        "vda", POOL, naming.volume(root.pk),
    )  # fmt: skip
    assert usage(vcloud.client) == {"instances": 1, "disk_gb": 0, "volumes": 1, "volume_gb": 3}

    # The boot volume is not detached as a data volume is.
    detach = vcloud.client.delete(f"/api/v1/instances/{instance['id']}/volumes/{root.pk}")
    assert_error(detach, 409, "boot_volume")
    for refused in ("rebuild", "snapshot"):
        body = {"image": str(vcloud.image.pk)} if refused == "rebuild" else {"name": "img"}
        assert_error(verb(vcloud.client, instance["id"], refused, body), 409, "boot_from_volume")

    deleted = vcloud.client.delete(f"/api/v1/instances/{instance['id']}")
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    kept = vcloud.client.get(f"/api/v1/volumes/{root.pk}").json()
    assert (kept["status"], kept["attachment"]) == ("available", None)
    assert len(operations_of(str(root.pk))) == 1  # no delete queued


def test_delete_on_termination_deletes_and_erases_the_boot_volume(vcloud):
    answer = boot(vcloud.client, {"image": str(vcloud.image.pk), "size_gb": 2,
                                  "delete_on_termination": True})  # fmt: skip
    root = Volume.objects.get(name="vm-1-root")
    for operation in (str(operations_of(str(root.pk))[0].pk), answer.json()["operation"]["id"]):
        assert run_operation(operation) == "succeeded"
    deleted = vcloud.client.delete(f"/api/v1/instances/{answer.json()['instance']['id']}")
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    assert Volume.objects.get(pk=root.pk).status == "deleting"
    erase = operations_of(str(root.pk))[-1]
    assert erase.action == "volume.delete"
    assert run_operation(str(erase.pk)) == "succeeded"
    assert Volume.objects.get(pk=root.pk).status == "deleted"
    assert vcloud.client.get(f"/api/v1/volumes/{root.pk}").status_code == 404


def test_boot_from_an_existing_volume_made_from_an_image(vcloud):
    made = vcloud.client.post(
        "/api/v1/volumes",
        {"name": "os", "size_gb": 2, "image": str(vcloud.image.pk)},
        format="json",
    )
    assert run_operation(made.json()["operation"]["id"]) == "succeeded"
    volume_id = made.json()["volume"]["id"]
    answer = boot(vcloud.client, {"volume": volume_id})
    assert answer.status_code == 202, answer.content
    assert Volume.objects.get(pk=volume_id).status == "attaching"
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    shown = vcloud.client.get(f"/api/v1/volumes/{volume_id}").json()
    assert (shown["status"], shown["attachment"]["device"]) == ("in-use", "vda")
    again = boot(vcloud.client, {"volume": volume_id}, name="vm-2")
    assert_error(again, 409, "volume_in_use")


def test_refused_boot_volumes_change_nothing(vcloud):
    empty = vcloud.client.post("/api/v1/volumes", {"name": "blank", "size_gb": 2}, format="json")
    assert run_operation(empty.json()["operation"]["id"]) == "succeeded"
    before = state()
    image = str(vcloud.image.pk)
    cases = [
        ({"volume": empty.json()["volume"]["id"]}, 400, "volume_not_bootable"),
        ({"volume": "00000000-0000-4000-8000-000000000000"}, 400, "unknown_volume"),
        ({"image": image, "size_gb": 2, "volume_type": "gold"}, 400, "unknown_volume_type"),
        ({"image": image, "size_gb": 101}, 400, "volume_too_large"),
    ]
    for boot_volume, status, code in cases:
        assert_error(boot(vcloud.client, boot_volume), status, code)
    for bad in ({"image": image}, {"volume": image, "size_gb": 2}, {}):
        assert boot(vcloud.client, bad).status_code == 400
    both = boot(vcloud.client, {"image": image, "size_gb": 2}, image=image)
    assert both.status_code == 400
    tenant_services.quota_set(actor=SYSTEM, tenant=vcloud.tenant, resource="volume_gb", limit=1)
    assert_error(boot(vcloud.client, {"image": image, "size_gb": 2}), 403, "quota_exceeded")
    assert state() == before


def test_a_boot_volume_being_snapshotted_is_kept_when_its_instance_goes(vcloud):
    answer = boot(vcloud.client, {"image": str(vcloud.image.pk), "size_gb": 2,
                                  "delete_on_termination": True})  # fmt: skip
    root = Volume.objects.get(name="vm-1-root")
    for operation in (str(operations_of(str(root.pk))[0].pk), answer.json()["operation"]["id"]):
        assert run_operation(operation) == "succeeded"
    pending = vcloud.client.post("/api/v1/volume-snapshots",
                                 {"volume": str(root.pk), "name": "s"}, format="json")  # fmt: skip
    assert pending.status_code == 202, pending.content
    deleted = vcloud.client.delete(f"/api/v1/instances/{answer.json()['instance']['id']}")
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    assert Instance.objects.get(pk=answer.json()["instance"]["id"]).status == "deleted"
    kept = vcloud.client.get(f"/api/v1/volumes/{root.pk}").json()
    assert (kept["status"], kept["attachment"]) == ("available", None)
    assert "delete it yourself" in kept["fault"]
