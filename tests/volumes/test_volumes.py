"""Volumes end to end on libvirt's fake hypervisor (test:///default): the API accepts, quota
and placement are decided in its transaction, the worker makes, grows and erases the qcow2
file in the host's volumes pool (issue 11, slice 1)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from hosts import naming
from hosts.hypervisors import hypervisor_for
from hypervisor.base import DriverError, NotFound
from hypervisor.libvirt import LibvirtHypervisor
from iaas.models import AuditEvent
from operations.models import Operation
from operations.worker import run_operation
from tenants import services as tenant_services
from tests import factories
from tests.factories import SYSTEM
from volumes.models import Volume, VolumeType
from volumes.worker.handlers import ERASED_BY_NOTHING, create_steps

GIB = 1024**3
POOL = naming.storage_pool("h01", "volumes")
DROP = object()  # a field left out of a request body

pytestmark = pytest.mark.django_db


@pytest.fixture
def vcloud(cloud: SimpleNamespace) -> SimpleNamespace:
    """The `cloud` (tests/conftest.py) with the public volume type `standard` (at most 100
    GiB), the default type of a create that names none."""
    cloud.volume_type = factories.volume_type("standard", max_size_gb=100)
    return cloud


def create(client: Any, **overrides: Any) -> Any:
    return client.post("/api/v1/volumes", {"name": "data", "size_gb": 2} | overrides, format="json")


def created_volume(cloud: SimpleNamespace, **overrides: Any) -> dict[str, Any]:
    """A volume created through the API and made by the worker; its JSON."""
    answer = create(cloud.client, **overrides)
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    return cloud.client.get(f"/api/v1/volumes/{answer.json()['volume']['id']}").json()


def on_host(cloud: SimpleNamespace, volume_id: str) -> Any:
    return hypervisor_for(cloud.host).storage_volume_info(POOL, f"volume-{volume_id}")


def usage(client: Any) -> dict[str, int]:
    lines = client.get("/api/v1/quotas").json()["results"]
    return {line["resource"]: line["usage"] for line in lines}


def nothing_created() -> None:
    assert not Volume.objects.exists()
    assert not Operation.objects.exists()
    assert not AuditEvent.objects.filter(action="volume.create", outcome="success").exists()


# ---- create ----------------------------------------------------------------------------------


def test_an_empty_volume_is_accepted_then_made_by_the_worker(vcloud):
    answer = create(vcloud.client, description="scratch")
    assert answer.status_code == 202, answer.content
    volume, operation = answer.json()["volume"], answer.json()["operation"]
    assert (volume["status"], volume["size_gb"], volume["volume_type"]) == ("creating", 2,
                                                                           "standard")  # fmt: skip
    assert (volume["zone"], volume["source_image"], operation["status"]) == (
        "fr-par-1", None, "queued",
    )  # fmt: skip
    with pytest.raises(NotFound):
        on_host(vcloud, volume["id"])  # nothing on the host before the worker runs

    assert run_operation(operation["id"]) == "succeeded"
    shown = vcloud.client.get(f"/api/v1/volumes/{volume['id']}").json()
    assert (shown["status"], shown["fault"]) == ("available", "")
    stored = on_host(vcloud, volume["id"])
    assert (stored.capacity_bytes, stored.format) == (2 * GIB, "qcow2")
    done = vcloud.client.get(f"/api/v1/operations/{operation['id']}").json()
    assert [s["name"] for s in done["steps"]] == ["pool", "create"]
    assert {k: usage(vcloud.client)[k] for k in ("volumes", "volume_gb")} == {
        "volumes": 1, "volume_gb": 2,
    }  # fmt: skip
    event = AuditEvent.objects.get(action="volume.create", outcome="success")
    assert event.tenant_id == vcloud.tenant.pk
    assert (event.details["zone"], event.details["jurisdiction"]) == ("fr-par-1", "FR")
    assert run_operation(operation["id"]) == "skipped"  # finished: a redelivery does nothing


def test_a_volume_from_an_image_is_a_standalone_copy_of_its_size(vcloud, tiny_qcow2):
    image = factories.image(vcloud.tenant, "base", file=tiny_qcow2)
    answer = create(vcloud.client, image=str(image.pk), size_gb=3)
    assert answer.status_code == 202, answer.content
    volume = answer.json()["volume"]
    assert volume["source_image"] == str(image.pk)
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"

    assert vcloud.client.get(f"/api/v1/volumes/{volume['id']}").json()["status"] == "available"
    assert on_host(vcloud, volume["id"]).capacity_bytes == 3 * GIB
    hv = hypervisor_for(vcloud.host)
    images_pool = naming.storage_pool("h01", "images")
    assert hv.storage_volume_info(images_pool, naming.cached_image(image.pk))  # cached
    # That the copy stands alone (no backing file: it outlives the image and its cache) is
    # the driver's contract (copy_storage_volume), proven on QEMU in
    # tests/hypervisor/test_hypervisor_contract.py; libvirt's fake holds no data to copy.
    steps = Operation.objects.get(target_id=volume["id"]).steps
    assert [s["name"] for s in steps] == ["pool", "cache_image", "copy", "grow"]


def test_every_create_step_runs_twice_without_failing_or_duplicating(vcloud, tiny_qcow2):
    """A worker that dies after any step: the next one runs them all again."""
    image = factories.image(vcloud.tenant, "base", file=tiny_qcow2)
    for source in (None, image):
        volume, _operation = factories.volume(
            vcloud.tenant, volume_type=vcloud.volume_type, size_gb=2, image=source
        )
        hv = hypervisor_for(vcloud.host)
        for _attempt in range(2):
            for _name, call in create_steps(hv, volume):
                call()
        assert on_host(vcloud, str(volume.pk)).capacity_bytes == 2 * GIB
        names = [v.name for v in hv.list_storage_volumes(POOL)]
        assert names.count(f"volume-{volume.pk}") == 1


def test_a_create_with_an_idempotency_key_makes_one_volume(vcloud):
    headers = {"HTTP_IDEMPOTENCY_KEY": "vol-1"}
    body = {"name": "data", "size_gb": 2}
    first = vcloud.client.post("/api/v1/volumes", body, format="json", **headers)
    again = vcloud.client.post("/api/v1/volumes", body, format="json", **headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Volume.objects.count() == Operation.objects.count() == 1


# ---- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"size_gb": DROP}, "invalid"),  # no size
        ({"size_gb": 0}, "invalid"),
        ({"size_gb": "5"}, "invalid"),
        ({"size_gb": 2.0}, "invalid"),
        ({"sise_gb": 2}, "unknown_field"),
        ({"name": "bad name!"}, "invalid_name"),
        ({"name": ""}, "invalid"),
        ({"description": "a\x01b"}, "invalid_description"),
        ({"volume_type": "gold"}, "unknown_volume_type"),
        ({"image": "00000000-0000-4000-8000-000000000000"}, "unknown_image"),
        ({"size_gb": 101}, "volume_too_large"),  # the type's maximum is 100
    ],
)
def test_invalid_input_is_a_400_that_creates_nothing(vcloud, body, code):
    body = {key: value for key, value in ({"name": "data", "size_gb": 2} | body).items()
            if value is not DROP}  # fmt: skip
    answer = vcloud.client.post("/api/v1/volumes", body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == code
    nothing_created()


def test_an_image_larger_than_the_volume_is_refused(vcloud, tmp_path):
    big = factories.image(vcloud.tenant, "big", file=factories.qcow2(tmp_path / "b.qcow2", "2G"))
    answer = create(vcloud.client, image=str(big.pk), size_gb=1)
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "volume_smaller_than_image"
    nothing_created()
    assert create(vcloud.client, image=str(big.pk), size_gb=2).status_code == 202


@pytest.mark.parametrize(("resource", "limit"), [("volumes", 0), ("volume_gb", 1)])
def test_a_quota_refusal_creates_nothing(vcloud, resource, limit):
    tenant_services.quota_set(actor=SYSTEM, tenant=vcloud.tenant, resource=resource, limit=limit)
    answer = create(vcloud.client, size_gb=2)
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert (error["code"], error["details"]["resource"]) == ("quota_exceeded", resource)
    nothing_created()


def test_a_residency_no_zone_satisfies_is_refused_and_audited(vcloud):
    # The ORM: no service changes a tenant's residency once created (as an admin edit would).
    vcloud.tenant.residency = ["DE"]
    vcloud.tenant.save()
    answer = create(vcloud.client)
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "residency_unsatisfiable"
    assert "DE" in error["message"]
    nothing_created()
    event = AuditEvent.objects.get(action="volume.create", outcome="refused")
    assert (event.details["code"], event.tenant_id) == ("residency_unsatisfiable",
                                                       vcloud.tenant.pk)  # fmt: skip


def test_no_host_with_room_or_in_the_zone_asked_is_a_409(vcloud):
    # libvirt's fake reports 100 GiB free in every pool.
    factories.volume_type("huge", max_size_gb=1000)
    answer = create(vcloud.client, volume_type="huge", size_gb=101)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "no_valid_host"
    answer = create(vcloud.client, zone="fr-par-2")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "residency_unsatisfiable"
    nothing_created()


def test_a_disabled_host_receives_no_volume(vcloud):
    from hosts.services import hosts as host_services

    host_services.host_set_state(actor=SYSTEM, host=vcloud.host, state="disabled", reason="x")
    assert create(vcloud.client).status_code == 409
    nothing_created()


# ---- rename, extend, delete -------------------------------------------------------------------


def test_rename_and_describe(vcloud):
    volume = created_volume(vcloud)
    url = f"/api/v1/volumes/{volume['id']}"
    answer = vcloud.client.patch(url, {"name": "logs", "description": "app logs"}, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["name"], answer.json()["description"]) == ("logs", "app logs")
    assert AuditEvent.objects.filter(action="volume.update", outcome="success").count() == 1
    refused = vcloud.client.patch(url, {"name": "no spaces"}, format="json")
    assert refused.status_code == 400
    assert vcloud.client.get(url).json()["name"] == "logs"


def test_extend_grows_the_volume_and_its_quota_usage(vcloud):
    volume = created_volume(vcloud)
    url = f"/api/v1/volumes/{volume['id']}/extend"
    answer = vcloud.client.post(url, {"size_gb": 5}, format="json")
    assert answer.status_code == 202, answer.content
    shown = vcloud.client.get(f"/api/v1/volumes/{volume['id']}").json()
    assert (shown["status"], shown["size_gb"]) == ("extending", 5)
    assert usage(vcloud.client)["volume_gb"] == 5  # the growth is claimed at once
    again = vcloud.client.post(url, {"size_gb": 6}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "wrong_state")

    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    shown = vcloud.client.get(f"/api/v1/volumes/{volume['id']}").json()
    assert (shown["status"], shown["size_gb"], shown["fault"]) == ("available", 5, "")
    # libvirt's fake cannot resize a volume (virStorageVolResize): the grow is a no-op there;
    # tests/hypervisor/test_hypervisor_contract.py proves resize_storage_volume on QEMU.
    steps = Operation.objects.get(pk=answer.json()["operation"]["id"]).steps
    assert [s["name"] for s in steps] == ["grow"]


@pytest.mark.parametrize(
    ("size_gb", "status", "code"),
    [(2, 400, "volume_cannot_shrink"), (1, 400, "volume_cannot_shrink"),
     (101, 400, "volume_too_large"), (11, 403, "quota_exceeded")],
)  # fmt: skip
def test_a_refused_extend_changes_nothing(vcloud, size_gb, status, code):
    tenant_services.quota_set(actor=SYSTEM, tenant=vcloud.tenant, resource="volume_gb", limit=10)
    volume = created_volume(vcloud)
    operations = Operation.objects.count()
    answer = vcloud.client.post(
        f"/api/v1/volumes/{volume['id']}/extend", {"size_gb": size_gb}, format="json"
    )
    assert answer.status_code == status, answer.content
    assert answer.json()["error"]["code"] == code
    shown = vcloud.client.get(f"/api/v1/volumes/{volume['id']}").json()
    assert (shown["status"], shown["size_gb"]) == ("available", 2)
    assert Operation.objects.count() == operations
    assert not AuditEvent.objects.filter(action="volume.extend", outcome="success").exists()


def test_extend_of_a_volume_being_created_is_a_409(vcloud):
    volume = create(vcloud.client).json()["volume"]
    answer = vcloud.client.post(
        f"/api/v1/volumes/{volume['id']}/extend", {"size_gb": 5}, format="json"
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "wrong_state")
    assert Volume.objects.get(pk=volume["id"]).size_gb == 2


def test_a_failed_extend_gives_the_claim_back(vcloud, monkeypatch):
    volume = created_volume(vcloud)
    # Fault injection: libvirt's fake cannot resize, so the grow is skipped there; a host that
    # refuses to grow the file (say, out of space) is what this test needs.
    monkeypatch.setattr("volumes.worker.handlers.stores_no_data", lambda host: False)
    answer = vcloud.client.post(
        f"/api/v1/volumes/{volume['id']}/extend", {"size_gb": 5}, format="json"
    )
    assert run_operation(answer.json()["operation"]["id"]) == "failed"
    shown = vcloud.client.get(f"/api/v1/volumes/{volume['id']}").json()
    assert (shown["status"], shown["size_gb"]) == ("available", 2)
    assert shown["fault"].startswith("The extend failed: ")
    assert usage(vcloud.client)["volume_gb"] == 2
    assert AuditEvent.objects.filter(action="volume.extend", outcome="failed").count() == 1


def test_delete_erases_and_removes_the_storage(vcloud):
    volume = created_volume(vcloud)
    url = f"/api/v1/volumes/{volume['id']}"
    answer = vcloud.client.delete(url)
    assert answer.status_code == 202, answer.content
    assert vcloud.client.get(url).json()["status"] == "deleting"
    assert vcloud.client.delete(url).status_code == 409  # already deleting
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"

    with pytest.raises(NotFound):
        on_host(vcloud, volume["id"])
    assert vcloud.client.get(url).status_code == 404  # a deleted volume is gone from the API
    stored = Volume.objects.get(pk=volume["id"])
    assert (stored.status, stored.erased_by) == ("deleted", ERASED_BY_NOTHING)
    operation = Operation.objects.get(pk=answer.json()["operation"]["id"])
    assert [s["name"] for s in operation.steps] == ["erase"]
    assert operation.params["erased_by"] == ERASED_BY_NOTHING
    erase = AuditEvent.objects.get(action="volume.erase")
    assert (erase.tenant_id, erase.details["erased_by"]) == (vcloud.tenant.pk, ERASED_BY_NOTHING)
    assert {k: usage(vcloud.client)[k] for k in ("volumes", "volume_gb")} == {
        "volumes": 0, "volume_gb": 0,
    }  # fmt: skip


def test_a_volume_being_created_cannot_be_deleted(vcloud):
    volume = create(vcloud.client).json()["volume"]
    answer = vcloud.client.delete(f"/api/v1/volumes/{volume['id']}")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "wrong_state")
    assert Volume.objects.get(pk=volume["id"]).status == "creating"
    assert Operation.objects.count() == 1


# ---- failures on the host --------------------------------------------------------------------


def test_a_copy_that_fails_half_way_leaves_error_a_fault_and_no_storage(
    vcloud, tiny_qcow2, monkeypatch
):
    image = factories.image(vcloud.tenant, "base", file=tiny_qcow2)
    real_create = LibvirtHypervisor.create_storage_volume

    def write_then_fail(self, spec):
        # Fault injection: the volume's file is written (on the fake, the copy from the
        # image is a create: handlers._copy_from), then the host fails (disk full).
        made = real_create(self, spec)
        if spec.name.startswith("volume-"):
            raise DriverError(f"No space left on device writing /var/lib/andromede/{spec.name}")
        return made

    monkeypatch.setattr(LibvirtHypervisor, "create_storage_volume", write_then_fail)
    answer = create(vcloud.client, image=str(image.pk))
    assert run_operation(answer.json()["operation"]["id"]) == "failed"

    volume = vcloud.client.get(f"/api/v1/volumes/{answer.json()['volume']['id']}").json()
    assert volume["status"] == "error"
    assert volume["fault"].startswith("The create failed: No space left on device")
    assert "/var/lib" not in volume["fault"]  # tenants are not told the host's paths
    with pytest.raises(NotFound):
        on_host(vcloud, volume["id"])  # the partial copy is removed
    assert AuditEvent.objects.filter(action="volume.create", outcome="failed").count() == 1
    # A volume in error may be deleted (its quota is held until then).
    deleted = vcloud.client.delete(f"/api/v1/volumes/{volume['id']}")
    assert deleted.status_code == 202
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"


# ---- tenants ----------------------------------------------------------------------------------


def test_another_tenants_volume_is_a_404_everywhere_and_nothing_changes(vcloud, make_tenant,
                                                                        make_caller):  # fmt: skip
    volume = created_volume(vcloud)
    intruder = make_caller(make_tenant("other"), "admin").client()
    url = f"/api/v1/volumes/{volume['id']}"
    calls = [
        intruder.get(url),
        intruder.patch(url, {"name": "mine"}, format="json"),
        intruder.delete(url),
        intruder.post(f"{url}/extend", {"size_gb": 5}, format="json"),
        intruder.get(f"{url}/operations"),
    ]
    for answer in calls:
        assert answer.status_code == 404, answer.content
        assert answer.json()["error"]["code"] == "not_found"
    assert intruder.get("/api/v1/volumes").json()["results"] == []
    stored = Volume.objects.get(pk=volume["id"])
    assert (stored.name, stored.status, stored.size_gb) == ("data", "available", 2)
    assert Operation.objects.count() == 1


def test_a_reader_may_list_but_not_create(vcloud, make_caller):
    reader = make_caller(vcloud.tenant, "reader").client()
    assert reader.get("/api/v1/volumes").status_code == 200
    answer = create(reader)
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "permission_denied")
    nothing_created()


def test_volume_types_a_tenant_sees(vcloud, make_tenant):
    other = make_tenant("other")
    factories.volume_type("acme-only", is_public=False, tenants=["acme"])
    factories.volume_type("other-only", is_public=False, tenants=["other"])
    names = [t["name"] for t in vcloud.client.get("/api/v1/volume-types").json()["results"]]
    assert sorted(names) == ["acme-only", "standard"]
    assert create(vcloud.client, volume_type="other-only").json()["error"]["code"] == (
        "unknown_volume_type"
    )
    assert other.slug == "other"


def test_operators_declare_volume_types(vcloud, make_caller):
    operator = make_caller(None, operator=True).client()
    body = {"name": "fast", "max_size_gb": 50, "is_public": False, "tenants": ["acme"]}
    answer = operator.post("/api/v1/admin/volume-types", body, format="json")
    assert answer.status_code == 201, answer.content
    assert (answer.json()["tenants"], answer.json()["backend"]) == (["acme"], "dir")
    again = operator.post("/api/v1/admin/volume-types", body, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_exists")
    assert AuditEvent.objects.filter(action="volume_type.create", outcome="success").count() == 2


def test_an_image_a_volume_is_being_made_from_cannot_be_deleted(vcloud, tiny_qcow2):
    image = factories.image(vcloud.tenant, "base", file=tiny_qcow2)
    answer = create(vcloud.client, image=str(image.pk))
    refused = vcloud.client.delete(f"/api/v1/images/{image.pk}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "image_in_use")
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    assert vcloud.client.delete(f"/api/v1/images/{image.pk}").status_code == 204
    volume = vcloud.client.get(f"/api/v1/volumes/{answer.json()['volume']['id']}").json()
    assert volume["status"] == "available"  # the copy outlives its image


def test_the_residency_report_shows_where_volumes_lie(vcloud):
    volume = created_volume(vcloud)
    report = vcloud.client.get("/api/v1/residency").json()
    [france] = [j for j in report["jurisdictions"] if j["jurisdiction"] == "FR"]
    [zone] = [z for z in france["zones"] if z["name"] == "fr-par-1"]
    assert [v["id"] for v in zone["volumes"]] == [volume["id"]]


def test_an_abandoned_operation_releases_its_volume(vcloud, settings):
    """Past OPERATION_DEADLINE the sweeper fails a create (the volume goes to `error`, what
    is on the host unknown) and an extend (back to `available` at its old size)."""
    from datetime import timedelta

    from django.utils import timezone

    from operations.services.deadlines import fail_overdue_operations

    creating = create(vcloud.client, name="never-made").json()
    extended = created_volume(vcloud, name="grown")
    answer = vcloud.client.post(
        f"/api/v1/volumes/{extended['id']}/extend", {"size_gb": 5}, format="json"
    )
    # The ORM: operations created long ago (no service back-dates one).
    Operation.objects.filter(status="queued").update(
        created_at=timezone.now() - settings.OPERATION_DEADLINE - timedelta(seconds=1)
    )
    failed = fail_overdue_operations()
    assert sorted(failed) == sorted([creating["operation"]["id"], answer.json()["operation"]["id"]])
    never = vcloud.client.get(f"/api/v1/volumes/{creating['volume']['id']}").json()
    assert (never["status"], never["fault"].startswith("Not finished within")) == ("error", True)
    grown = vcloud.client.get(f"/api/v1/volumes/{extended['id']}").json()
    assert (grown["status"], grown["size_gb"]) == ("available", 2)
    assert usage(vcloud.client)["volume_gb"] == 4


def test_an_encrypted_rbd_type_is_refused_a_plain_one_declared(vcloud, make_caller):
    """LUKS on RBD is not built: refused at the type's creation, clearly, nothing made."""
    operator = make_caller(None, operator=True).client()
    body = {"name": "ceph-sealed", "max_size_gb": 10, "backend": "rbd", "encrypted": True}
    answer = operator.post("/api/v1/admin/volume-types", body, format="json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "not_supported_yet")
    assert "rbd" in answer.json()["error"]["message"]
    assert not VolumeType.objects.filter(name="ceph-sealed").exists()
    body = {**body, "name": "ceph", "encrypted": False}
    assert operator.post("/api/v1/admin/volume-types", body, format="json").status_code == 201
