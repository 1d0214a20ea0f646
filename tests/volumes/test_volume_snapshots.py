"""Volume snapshots and volumes made from them, through the API, on libvirt's fake
hypervisor (test:///default): accepted under quota and the volume's row lock, made by the
worker as a standalone file `volsnap-<id>` in the volumes pool, erased when deleted (issue
11 item 3). The live copy of an attached disk (the backup job) runs on real QEMU:
tests/e2e/test_volume_snapshots.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from hosts import naming
from hosts.hypervisors import hypervisor_for
from hypervisor.base import NotFound
from hypervisor.libvirt import LibvirtHypervisor
from iaas.models import AuditEvent
from operations.models import Operation
from operations.services.outcomes import release_abandoned
from operations.worker import run_operation
from tenants import services as tenant_services
from tests import factories
from tests.factories import SYSTEM
from tests.support.api_checks import assert_error
from tests.support.instance_api import active_instance
from volumes.models import Volume, VolumeSnapshot
from volumes.worker.handlers import ERASED_BY_NOTHING

GIB = 1024**3
POOL = naming.storage_pool("h01", "volumes")

pytestmark = pytest.mark.django_db


@pytest.fixture
def vcloud(cloud: SimpleNamespace) -> SimpleNamespace:
    cloud.volume_type = factories.volume_type("standard", max_size_gb=100)
    return cloud


def new_volume(client: Any, size_gb: int = 2, **body: Any) -> str:
    answer = client.post("/api/v1/volumes", {"name": "data", "size_gb": size_gb} | body,
                         format="json")  # fmt: skip
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    return str(answer.json()["volume"]["id"])


def snap(client: Any, volume_id: str, name: str = "before-upgrade") -> Any:
    return client.post(
        "/api/v1/volume-snapshots", {"volume": volume_id, "name": name}, format="json"
    )


def made_snapshot(client: Any, volume_id: str, name: str = "before-upgrade") -> dict[str, Any]:
    answer = snap(client, volume_id, name)
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    return dict(client.get(f"/api/v1/volume-snapshots/{answer.json()['volume_snapshot']['id']}")
                .json())  # fmt: skip


def usage(client: Any) -> dict[str, int]:
    lines = client.get("/api/v1/quotas").json()["results"]
    return {line["resource"]: line["usage"] for line in lines
            if line["resource"] in ("volumes", "volume_gb", "volume_snapshots")}  # fmt: skip


def state() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """What a refused request must leave as it was."""
    volumes = list(Volume.objects.order_by("id").values_list("id", "status", "size_gb"))
    snapshots = list(VolumeSnapshot.objects.order_by("id").values_list("id", "status", "name"))
    return volumes, snapshots, Operation.objects.count()


def test_a_snapshot_of_an_available_volume_is_a_standalone_file_counted_in_quotas(vcloud):
    volume_id = new_volume(vcloud.client, size_gb=3)
    answer = snap(vcloud.client, volume_id)
    assert answer.status_code == 202, answer.content
    shown, operation = answer.json()["volume_snapshot"], answer.json()["operation"]
    assert (shown["status"], shown["volume"], shown["size_gb"], shown["zone"]) == (
        "creating", volume_id, 3, "fr-par-1",
    )  # fmt: skip
    assert operation["action"] == "volume_snapshot.create"
    assert usage(vcloud.client) == {"volumes": 1, "volume_gb": 6, "volume_snapshots": 1}
    assert run_operation(operation["id"]) == "succeeded"

    done = vcloud.client.get(f"/api/v1/volume-snapshots/{shown['id']}").json()
    assert (done["status"], done["fault"], done["consistency"]) == ("available", "", "consistent")
    stored = hypervisor_for(vcloud.host).storage_volume_info(POOL, f"volsnap-{shown['id']}")
    assert (stored.capacity_bytes, stored.format) == (3 * GIB, "qcow2")
    steps = vcloud.client.get(f"/api/v1/operations/{operation['id']}").json()["steps"]
    assert [s["name"] for s in steps] == ["pool", "copy"]
    assert vcloud.client.get(f"/api/v1/volumes/{volume_id}").json()["status"] == "available"
    listed = vcloud.client.get("/api/v1/volume-snapshots").json()["results"]
    assert [s["id"] for s in listed] == [shown["id"]]
    history = vcloud.client.get(f"/api/v1/volume-snapshots/{shown['id']}/operations").json()
    assert [o["id"] for o in history] == [operation["id"]]
    event = AuditEvent.objects.get(action="volume_snapshot.create", outcome="success")
    assert event.details["volume"] == volume_id
    assert run_operation(operation["id"]) == "skipped"


def test_rename_and_describe(vcloud):
    snapshot = made_snapshot(vcloud.client, new_volume(vcloud.client))
    url = f"/api/v1/volume-snapshots/{snapshot['id']}"
    answer = vcloud.client.patch(url, {"name": "nightly", "description": "db"}, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["name"], answer.json()["description"]) == ("nightly", "db")
    bad = vcloud.client.patch(url, {"name": "bad name!"}, format="json")
    assert_error(bad, 400, "invalid_name")
    assert VolumeSnapshot.objects.get(pk=snapshot["id"]).name == "nightly"


def test_a_volume_from_a_snapshot_is_copied_and_grown_on_its_host(vcloud):
    snapshot = made_snapshot(vcloud.client, new_volume(vcloud.client, size_gb=2))
    answer = vcloud.client.post(
        "/api/v1/volumes", {"name": "restored", "size_gb": 4, "snapshot": snapshot["id"]},
        format="json",
    )  # fmt: skip
    assert answer.status_code == 202, answer.content
    volume = answer.json()["volume"]
    assert (volume["source_snapshot"], volume["source_image"]) == (snapshot["id"], None)
    # While the copy runs, the snapshot cannot be deleted (the worker reads its file).
    refused = vcloud.client.delete(f"/api/v1/volume-snapshots/{snapshot['id']}")
    assert_error(refused, 409, "snapshot_in_use")
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    steps = Operation.objects.get(pk=answer.json()["operation"]["id"]).steps
    assert [s["name"] for s in steps] == ["pool", "copy", "grow"]
    shown = vcloud.client.get(f"/api/v1/volumes/{volume['id']}").json()
    assert (shown["status"], shown["size_gb"]) == ("available", 4)
    assert usage(vcloud.client) == {"volumes": 2, "volume_gb": 8, "volume_snapshots": 1}


@pytest.mark.parametrize(
    ("size_gb", "status", "code"),
    [(1, 400, "volume_smaller_than_snapshot"), (101, 400, "volume_too_large")],
)
def test_a_volume_smaller_than_its_snapshot_is_refused(vcloud, size_gb, status, code):
    snapshot = made_snapshot(vcloud.client, new_volume(vcloud.client, size_gb=2))
    before = state()
    answer = vcloud.client.post(
        "/api/v1/volumes", {"name": "r", "size_gb": size_gb, "snapshot": snapshot["id"]},
        format="json",
    )  # fmt: skip
    assert_error(answer, status, code)
    assert state() == before


def test_image_and_snapshot_together_or_unknown_snapshot_are_400(vcloud):
    snapshot = made_snapshot(vcloud.client, new_volume(vcloud.client))
    before = state()
    both = vcloud.client.post(
        "/api/v1/volumes",
        {"name": "r", "size_gb": 2, "snapshot": snapshot["id"], "image": str(vcloud.image.pk)},
        format="json",
    )
    assert both.status_code == 400, both.content
    unknown = vcloud.client.post(
        "/api/v1/volumes",
        {"name": "r", "size_gb": 2, "snapshot": "00000000-0000-4000-8000-000000000000"},
        format="json",
    )
    assert_error(unknown, 400, "unknown_snapshot")
    assert state() == before


def test_a_snapshot_not_available_cannot_be_copied(vcloud):
    volume_id = new_volume(vcloud.client)
    creating = snap(vcloud.client, volume_id).json()["volume_snapshot"]
    before = state()
    answer = vcloud.client.post(
        "/api/v1/volumes", {"name": "r", "size_gb": 2, "snapshot": creating["id"]},
        format="json",
    )  # fmt: skip
    assert_error(answer, 409, "snapshot_not_available")
    assert state() == before


def test_while_a_snapshot_is_made_its_volume_is_not_deleted_extended_or_snapshotted(vcloud):
    volume_id = new_volume(vcloud.client)
    pending = snap(vcloud.client, volume_id).json()
    before = state()
    url = f"/api/v1/volumes/{volume_id}"
    assert_error(vcloud.client.delete(url), 409, "snapshot_in_progress")
    extend = vcloud.client.post(f"{url}/extend", {"size_gb": 5}, format="json")
    assert_error(extend, 409, "snapshot_in_progress")
    assert_error(snap(vcloud.client, volume_id, "again"), 409, "snapshot_in_progress")
    assert state() == before
    assert run_operation(pending["operation"]["id"]) == "succeeded"
    assert vcloud.client.delete(url).status_code == 202


def test_a_snapshot_outlives_its_volume_and_makes_a_volume_afterwards(vcloud):
    volume_id = new_volume(vcloud.client)
    snapshot = made_snapshot(vcloud.client, volume_id)
    deleted = vcloud.client.delete(f"/api/v1/volumes/{volume_id}")
    assert deleted.status_code == 202, deleted.content
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    shown = vcloud.client.get(f"/api/v1/volume-snapshots/{snapshot['id']}").json()
    assert (shown["status"], shown["volume"]) == ("available", volume_id)
    assert hypervisor_for(vcloud.host).storage_volume_info(POOL, f"volsnap-{snapshot['id']}")
    restored = new_volume(vcloud.client, snapshot=snapshot["id"])
    assert vcloud.client.get(f"/api/v1/volumes/{restored}").json()["status"] == "available"


def test_a_deleted_or_creating_volume_cannot_be_snapshotted(vcloud):
    volume_id = new_volume(vcloud.client)
    deleted = vcloud.client.delete(f"/api/v1/volumes/{volume_id}")
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    creating = vcloud.client.post("/api/v1/volumes", {"name": "c", "size_gb": 1},
                                  format="json").json()["volume"]  # fmt: skip
    before = state()
    assert_error(snap(vcloud.client, volume_id), 400, "unknown_volume")  # deleted: gone
    refused = snap(vcloud.client, creating["id"])
    assert_error(refused, 409, "wrong_state")
    assert refused.json()["error"]["details"] == {"status": "creating"}
    assert state() == before


@pytest.mark.parametrize(("resource", "limit"), [("volume_snapshots", 0), ("volume_gb", 3)])
def test_a_quota_refusal_creates_nothing(vcloud, resource, limit):
    volume_id = new_volume(vcloud.client, size_gb=2)
    tenant_services.quota_set(actor=SYSTEM, tenant=vcloud.tenant, resource=resource, limit=limit)
    before = state()
    answer = snap(vcloud.client, volume_id)
    assert_error(answer, 403, "quota_exceeded")
    assert answer.json()["error"]["details"]["resource"] == resource
    assert state() == before
    assert not AuditEvent.objects.filter(
        action="volume_snapshot.create", outcome="success"
    ).exists()


def test_delete_erases_the_file_and_gives_the_quota_back(vcloud):
    snapshot = made_snapshot(vcloud.client, new_volume(vcloud.client, size_gb=2))
    url = f"/api/v1/volume-snapshots/{snapshot['id']}"
    answer = vcloud.client.delete(url)
    assert answer.status_code == 202, answer.content
    assert vcloud.client.get(url).json()["status"] == "deleting"
    assert_error(vcloud.client.delete(url), 409, "wrong_state")
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    with pytest.raises(NotFound):
        hypervisor_for(vcloud.host).storage_volume_info(POOL, f"volsnap-{snapshot['id']}")
    assert vcloud.client.get(url).status_code == 404
    stored = VolumeSnapshot.objects.get(pk=snapshot["id"])
    assert (stored.status, stored.erased_by) == ("deleted", ERASED_BY_NOTHING)
    erase = AuditEvent.objects.get(action="volume_snapshot.erase")
    assert erase.details["erased_by"] == ERASED_BY_NOTHING
    assert usage(vcloud.client) == {"volumes": 1, "volume_gb": 2, "volume_snapshots": 0}


def test_a_copy_that_fails_leaves_error_a_fault_and_no_file(vcloud, monkeypatch):
    volume_id = new_volume(vcloud.client)

    def broken(self: Any, spec: Any) -> None:
        raise NotFound("the disk fell off")

    monkeypatch.setattr(LibvirtHypervisor, "create_storage_volume", broken)
    answer = snap(vcloud.client, volume_id)
    assert run_operation(answer.json()["operation"]["id"]) == "failed"
    shown = vcloud.client.get(
        f"/api/v1/volume-snapshots/{answer.json()['volume_snapshot']['id']}"
    ).json()
    assert shown["status"] == "error"
    assert shown["fault"].startswith("The snapshot failed")
    assert vcloud.client.get(f"/api/v1/volumes/{volume_id}").json()["status"] == "available"
    names = [v.name for v in hypervisor_for(vcloud.host).list_storage_volumes(POOL)]
    assert names == [f"volume-{volume_id}"]


def test_an_in_use_volume_is_snapshotted_live_and_stays_in_use(vcloud, monkeypatch):
    """The fake has neither hot-plug nor backup jobs: both stand in (the live copy itself
    is proven on QEMU, tests/e2e/test_volume_snapshots.py)."""
    monkeypatch.setattr(LibvirtHypervisor, "attach_disk", lambda self, name, disk: None)
    instance_id = active_instance(vcloud)
    volume_id = new_volume(vcloud.client)
    attached = vcloud.client.post(
        f"/api/v1/instances/{instance_id}/volumes", {"volume": volume_id}, format="json"
    )
    assert run_operation(attached.json()["operation"]["id"]) == "succeeded"
    snapshot = made_snapshot(vcloud.client, volume_id)
    assert snapshot["status"] == "available"
    assert vcloud.client.get(f"/api/v1/volumes/{volume_id}").json()["status"] == "in-use"
    pending = snap(vcloud.client, volume_id, "second").json()
    detach = vcloud.client.delete(f"/api/v1/instances/{instance_id}/volumes/{volume_id}")
    assert_error(detach, 409, "snapshot_in_progress")
    assert vcloud.client.get(f"/api/v1/volumes/{volume_id}").json()["status"] == "in-use"
    assert run_operation(pending["operation"]["id"]) == "succeeded"


def test_another_tenants_snapshot_is_a_404_everywhere(vcloud, make_tenant, make_caller):
    volume_id = new_volume(vcloud.client)
    snapshot = made_snapshot(vcloud.client, volume_id)
    intruder = make_caller(make_tenant("other"), "admin").client()
    url = f"/api/v1/volume-snapshots/{snapshot['id']}"
    before = state()
    for answer in (
        intruder.get(url),
        intruder.patch(url, {"name": "mine"}, format="json"),
        intruder.delete(url),
        intruder.get(f"{url}/operations"),
    ):
        assert_error(answer, 404, "not_found")
    assert intruder.get("/api/v1/volume-snapshots").json()["results"] == []
    assert_error(snap(intruder, volume_id), 400, "unknown_volume")
    taken = intruder.post(
        "/api/v1/volumes", {"name": "x", "size_gb": 2, "snapshot": snapshot["id"]}, format="json"
    )
    assert_error(taken, 400, "unknown_snapshot")
    assert state() == before


def test_an_abandoned_snapshot_goes_to_error_and_frees_its_volume(vcloud):
    volume_id = new_volume(vcloud.client)
    pending = snap(vcloud.client, volume_id).json()
    release_abandoned(Operation.objects.get(pk=pending["operation"]["id"]), "worker lost")
    stored = VolumeSnapshot.objects.get(pk=pending["volume_snapshot"]["id"])
    assert (stored.status, stored.fault) == ("error", "worker lost")
    assert vcloud.client.delete(f"/api/v1/volumes/{volume_id}").status_code == 202
