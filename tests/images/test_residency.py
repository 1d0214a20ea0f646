"""Images and snapshots live only in image stores of a zone the tenant's residency policy
allows (review M13, DESIGN §6, §8), and a tenant's image is copied only onto hosts such a
zone holds. A refusal is 409 `residency_unsatisfiable` (placement's code), audited, and
changes nothing. Public images belong to the platform and go anywhere.

The world: `cloud` (tenant acme, residency FR; host h01 in fr-par-1, FR; the default image
store in fr-demo-1, FR) and, where a test needs it, a German zone with a store and a host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from compute.models import Instance
from hosts.hypervisors import hypervisor_for
from hosts.naming import cached_image
from hosts.naming import storage_pool as pool_name
from hypervisor.base import NotFound
from iaas.models import AuditEvent
from images.models import Image
from images.services import stores
from operations.worker import run_operation
from tenants.models import Tenant
from tests import factories
from tests.factories import SYSTEM
from tests.support.api_checks import assert_error, business_rows, last_event_id
from tests.support.instance_api import active_instance, create, shown

pytestmark = pytest.mark.django_db


@pytest.fixture
def germany(cloud: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """A German zone with an image store (its own directory) and a host."""
    zone = factories.zone("de-fra-1", "DE")
    directory = tmp_path / "de-store"
    directory.mkdir()
    store = stores.image_store_create(actor=SYSTEM, name="de-fra", zone=zone, path=str(directory))
    host = factories.host("h-de", zone)
    return SimpleNamespace(zone=zone, store=store, directory=directory, host=host)


def set_residency(tenant: Tenant, residency: list[str]) -> None:
    # The ORM: no service changes a tenant's residency once created (an operator's admin
    # edit does, through tenants.services.validate_residency).
    Tenant.objects.filter(pk=tenant.pk).update(residency=residency)
    tenant.refresh_from_db()


def files_in(*directories: Path) -> list[str]:
    return sorted(p.name for d in directories if d.is_dir() for p in d.iterdir())


def upload(client: Any, image_id: str, file: Path) -> Any:
    return client.put(
        f"/api/v1/images/{image_id}/file",
        file.read_bytes(),
        content_type="application/octet-stream",
    )


def image_quota(client: Any) -> int:
    lines = client.get("/api/v1/quotas").json()["results"]
    return next(line["usage"] for line in lines if line["resource"] == "images")


def refusal(since: int, action: str, tenant: Tenant) -> AuditEvent:
    event = AuditEvent.objects.get(id__gt=since, action=action, outcome="refused")
    assert event.tenant_id == tenant.pk
    assert event.details["code"] == "residency_unsatisfiable"
    return event


def test_an_image_lands_in_a_store_of_a_zone_its_tenants_residency_allows(
    cloud, germany, make_tenant, make_caller, tiny_qcow2, image_store
):
    globex = make_tenant("globex", residency=["DE"])
    client = make_caller(globex, "member").client()

    created = client.post("/api/v1/images", {"name": "db", "disk_format": "qcow2"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["zone"] == "de-fra-1"
    answer = upload(client, created.json()["id"], tiny_qcow2)

    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "active"
    assert files_in(germany.directory) == [created.json()["id"]]
    assert files_in(image_store) == [str(cloud.image.pk)]  # nothing of globex's in France
    event = AuditEvent.objects.get(action="image.create", target_id=created.json()["id"])
    assert (event.details["zone"], event.details["jurisdiction"]) == ("de-fra-1", "DE")
    # A French tenant's image goes to the French default store.
    french = cloud.client.post(
        "/api/v1/images", {"name": "web", "disk_format": "qcow2"}, format="json"
    )
    assert french.json()["zone"] == "fr-demo-1"


def test_creating_an_image_no_store_of_the_policy_can_hold_is_refused_and_changes_nothing(
    cloud, germany, make_tenant, make_caller
):
    swiss = make_tenant("helvetica", residency=["CH"])
    client = make_caller(swiss, "member").client()
    before, since = business_rows(), last_event_id()

    answer = client.post("/api/v1/images", {"name": "db", "disk_format": "qcow2"}, format="json")

    error = assert_error(answer, 409, "residency_unsatisfiable")
    assert error["details"] == {"residency": ["CH"]}
    assert business_rows() == before
    assert image_quota(client) == 0
    assert files_in(germany.directory) == []
    refusal(since, "image.create", swiss)


def test_an_upload_after_the_policy_narrowed_to_no_store_is_refused_and_changes_nothing(
    cloud, germany, tiny_qcow2, image_store
):
    created = cloud.client.post(
        "/api/v1/images", {"name": "db", "disk_format": "qcow2"}, format="json"
    )
    image_id = created.json()["id"]
    set_residency(cloud.tenant, ["CH"])
    before, since = business_rows(), last_event_id()

    answer = upload(cloud.client, image_id, tiny_qcow2)

    assert_error(answer, 409, "residency_unsatisfiable")
    assert business_rows() == before
    assert Image.objects.get(pk=image_id).status == "queued"
    assert image_quota(cloud.client) == 1  # still the one image it made
    assert files_in(image_store, germany.directory) == [str(cloud.image.pk)]
    refusal(since, "image.upload", cloud.tenant)


def test_an_upload_after_the_policy_moved_lands_in_a_store_the_policy_allows_now(
    cloud, germany, tiny_qcow2, image_store
):
    set_residency(cloud.tenant, ["DE"])
    created = cloud.client.post(
        "/api/v1/images", {"name": "db", "disk_format": "qcow2"}, format="json"
    )
    assert created.json()["zone"] == "de-fra-1"
    set_residency(cloud.tenant, ["FR"])  # before a byte was sent

    answer = upload(cloud.client, created.json()["id"], tiny_qcow2)

    assert answer.status_code == 200, answer.content
    assert answer.json()["zone"] == "fr-demo-1"
    assert files_in(germany.directory) == []
    assert created.json()["id"] in files_in(image_store)


def test_a_snapshot_no_store_of_the_policy_can_hold_is_refused_and_changes_nothing(
    cloud, make_tenant, make_caller, ssh_public_keys
):
    # A German host but no German image store: instances may run there, images cannot live.
    zone = factories.zone("de-fra-1", "DE")
    factories.host("h-de", zone)
    globex = make_tenant("globex", residency=["DE"])
    client = make_caller(globex, "member").client()
    body = {"name": "db-1", "flavor": "small", "image": str(cloud.image.pk)}
    created = client.post("/api/v1/instances", body, format="json").json()
    # A public image is the platform's, not tenant data: it is cached on a German host.
    assert run_operation(created["operation"]["id"]) == "succeeded"
    instance_id = created["instance"]["id"]
    before, since = business_rows(), last_event_id()

    answer = client.post(
        f"/api/v1/instances/{instance_id}/snapshot", {"name": "snap"}, format="json"
    )

    assert_error(answer, 409, "residency_unsatisfiable")
    assert business_rows() == before
    assert shown(client, instance_id) == ("active", None, "running")
    refusal(since, "instance.snapshot", globex)


def test_a_snapshot_whose_policy_narrowed_before_the_copy_is_refused_by_the_worker(
    cloud, germany, image_store
):
    instance_id = active_instance(cloud)
    answer = cloud.client.post(
        f"/api/v1/instances/{instance_id}/snapshot", {"name": "snap"}, format="json"
    )
    assert answer.status_code == 202, answer.content
    image_id = answer.json()["image"]["id"]
    set_residency(cloud.tenant, ["CH"])  # after the request, before the worker streams

    assert run_operation(answer.json()["operation"]["id"]) == "failed"

    image = cloud.client.get(f"/api/v1/images/{image_id}").json()
    assert image["status"] == "error"
    assert "residency" in image["error_message"], image
    assert files_in(image_store, germany.directory) == [str(cloud.image.pk)]  # no byte left
    event = AuditEvent.objects.get(action="image.snapshot_saved", target_id=image_id)
    assert event.outcome == "refused"
    assert event.details["code"] == "residency_unsatisfiable"
    assert shown(cloud.client, instance_id) == ("active", None, "running")


def test_a_private_image_is_not_copied_to_a_host_its_owners_policy_no_longer_allows(
    cloud, tiny_qcow2
):
    private = factories.image(cloud.tenant, "web-base", file=tiny_qcow2)
    body = {"name": "web-2", "flavor": "small", "image": str(private.pk)}
    created = cloud.client.post("/api/v1/instances", body, format="json").json()
    set_residency(cloud.tenant, ["DE"])  # narrowed between placement and the build

    assert run_operation(created["operation"]["id"]) == "failed"

    instance = Instance.objects.get(pk=created["instance"]["id"])
    assert instance.status == "error"
    assert "residency" in instance.fault, instance.fault
    with pytest.raises(NotFound):  # the image was not copied onto the host
        hypervisor_for(cloud.host).storage_volume_info(
            pool_name(cloud.host.name, "images"), cached_image(private.pk)
        )


def test_a_public_image_is_cached_whatever_the_booting_tenants_policy(cloud):
    stores.host_zone_check(cloud.image, factories.zone("ch-gva-1", "CH"))  # no refusal
    private = factories.image(cloud.tenant, "private")
    with pytest.raises(stores.ResidencyUnsatisfiable):
        stores.host_zone_check(private, factories.zone("de-ber-1", "DE"))


# ---- GET /api/v1/residency: where is my data --------------------------------------------------


def zones_of(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {z["name"]: z for j in answer["jurisdictions"] for z in j["zones"]}


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


def test_residency_shows_where_each_of_the_tenants_instances_and_images_lies(
    cloud, germany, tiny_qcow2, make_tenant, make_caller
):
    set_residency(cloud.tenant, ["DE", "FR"])
    created = create(cloud.client, cloud.image, zone="fr-par-1").json()
    assert run_operation(created["operation"]["id"]) == "succeeded"
    instance_id = created["instance"]["id"]
    in_france = factories.image(cloud.tenant, "fr-base", file=tiny_qcow2)
    set_residency(cloud.tenant, ["DE"])
    in_germany = factories.image(cloud.tenant, "de-base", file=tiny_qcow2)
    waiting = factories.image(cloud.tenant, "no-file-yet")
    # Another tenant's data, in the same zones, never appears.
    globex = make_tenant("globex", residency=["DE", "FR"])
    theirs = factories.image(globex, "globex-secret", file=tiny_qcow2)
    their_vm = factories.active_instance(
        globex, flavor=cloud.flavor, image=cloud.image, name="globex-vm"
    )
    reader = make_caller(cloud.tenant, "reader").client()

    response = reader.get("/api/v1/residency")

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["residency"] == ["DE"]
    # France holds its data but the policy (narrowed since) no longer allows it: shown.
    assert [(j["jurisdiction"], j["allowed"]) for j in answer["jurisdictions"]] == [
        ("DE", True),
        ("FR", False),
    ]
    zones = zones_of(answer)
    assert sorted(zones) == ["de-fra-1", "fr-demo-1", "fr-par-1"]
    assert [i["id"] for i in zones["fr-par-1"]["instances"]] == [instance_id]
    assert zones["fr-par-1"]["images"] == []
    assert names(zones["fr-demo-1"]["images"]) == ["fr-base"]
    assert names(zones["de-fra-1"]["images"]) == ["de-base"]
    assert (zones["de-fra-1"]["country"], zones["de-fra-1"]["instances"]) == ("DE", [])
    assert names(answer["unplaced"]["images"]) == ["no-file-yet"]
    assert answer["unplaced"]["instances"] == []
    text = response.content.decode()
    for foreign in (str(theirs.pk), str(their_vm.pk), "globex", str(cloud.image.pk)):
        assert foreign not in text  # neither another tenant's data nor the platform's image
    assert "h01" not in text  # no host names (review L2)
    for own in (in_france, in_germany, waiting):
        assert str(own.pk) in text


def test_residency_of_a_tenant_with_no_data_lists_its_policy_only(
    make_tenant: Callable[..., Tenant], make_caller: Callable[..., Any]
):
    tenant = make_tenant("empty", residency=["FR", "BE"])
    answer = make_caller(tenant, "reader").client().get("/api/v1/residency").json()

    assert answer == {
        "residency": ["BE", "FR"],
        "jurisdictions": [
            {"jurisdiction": "BE", "allowed": True, "zones": []},
            {"jurisdiction": "FR", "allowed": True, "zones": []},
        ],
        "unplaced": {
            "exports": [],
            "images": [],
            "instances": [],
            "volume_snapshots": [],
            "volumes": [],
        },
    }


def test_residency_is_described_in_the_openapi_schema(cloud):
    schema = cloud.client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/residency"]["get"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/Residency"}
    assert {"residency", "jurisdictions", "unplaced"} <= set(
        schema["components"]["schemas"]["Residency"]["properties"]
    )
