"""Instances end to end on libvirt's fake hypervisor (test:///default): the API accepts,
quota, placement and addresses are claimed under locks, the worker builds and deletes."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from compute.models import Allocation, Instance
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from iaas.models import AuditEvent
from network.models import FixedIP, Port
from operations.models import Operation
from operations.worker import run_operation
from tenants import services as tenant_services
from tests import factories
from tests.factories import SYSTEM
from tests.support.instance_api import create
from tests.support.live_http import post_json


@pytest.mark.django_db
def test_create_is_accepted_then_built_by_the_worker(cloud):
    answer = create(cloud.client, cloud.image)
    assert answer.status_code == 202, answer.content
    instance, operation = answer.json()["instance"], answer.json()["operation"]
    assert (instance["status"], instance["task_state"]) == ("building", "spawning")
    assert instance["zone"] == "fr-par-1"
    assert instance["ip"].startswith("198.51.100.")
    assert operation["status"] == "queued"
    assert Allocation.objects.get(instance_id=instance["id"]).host == cloud.host

    assert run_operation(operation["id"]) == "succeeded"
    shown = cloud.client.get(f"/api/v1/instances/{instance['id']}").json()
    assert (shown["status"], shown["task_state"], shown["power_state"]) == (
        "active",
        None,
        "running",
    )
    domain = hypervisor_for(cloud.host).domain_info(instance["id"])
    assert domain.power_state == "running"
    assert (domain.tenant_id, domain.instance_id) == (str(cloud.tenant.pk), instance["id"])
    done = cloud.client.get(f"/api/v1/operations/{operation['id']}").json()
    assert done["status"] == "succeeded"
    assert [s["name"] for s in done["steps"]] == [
        "cache_image",
        "root_disk",
        "seed",
        "network",
        "define",
        "start",
        "wait_running",
    ]
    assert run_operation(operation["id"]) == "skipped"  # finished: a redelivery does nothing


@pytest.mark.django_db
def test_delete_removes_domain_disks_allocation_and_address(cloud):
    secret_user_data = "#cloud-config\npassword: hunter2-not-kept\n"
    created = create(cloud.client, cloud.image, user_data=secret_user_data).json()
    run_operation(created["operation"]["id"])
    instance_id = created["instance"]["id"]
    answer = cloud.client.delete(f"/api/v1/instances/{instance_id}")
    assert answer.status_code == 202
    assert (
        cloud.client.delete(f"/api/v1/instances/{instance_id}").status_code == 409
    )  # already deleting
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    assert Instance.objects.get(pk=instance_id).status == "deleted"
    assert Instance.objects.get(pk=instance_id).user_data == ""  # not kept past the instance (L3)
    assert cloud.client.get(f"/api/v1/instances/{instance_id}").status_code == 404
    hv = hypervisor_for(cloud.host)
    assert instance_id not in [d.name for d in hv.list_domains()]
    assert not Allocation.objects.exists()
    assert not Port.objects.exists()
    quotas = {
        q["resource"]: q["usage"] for q in cloud.client.get("/api/v1/quotas").json()["results"]
    }
    assert quotas["instances"] == quotas["vcpus"] == 0
    history = cloud.client.get(f"/api/v1/instances/{instance_id}/operations")
    assert history.status_code == 404  # a deleted instance is gone from the API


@pytest.mark.django_db
def test_a_verb_in_the_wrong_state_is_a_409_that_changes_nothing(cloud):
    created = create(cloud.client, cloud.image).json()
    answer = cloud.client.delete(f"/api/v1/instances/{created['instance']['id']}")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "wrong_state"
    assert Instance.objects.get(pk=created["instance"]["id"]).status == "building"
    assert Operation.objects.count() == 1


@pytest.mark.django_db
def test_a_failed_build_cleans_up_and_says_why(cloud):
    created = create(cloud.client, cloud.image).json()
    # The ORM: the host claims kvm, which libvirt's fake cannot do (it offers only 'test'
    # guests and cannot store the image's data): the build fails on the host.
    Host.objects.filter(pk=cloud.host.pk).update(domain_type="kvm")
    assert run_operation(created["operation"]["id"]) == "failed"
    instance = Instance.objects.get(pk=created["instance"]["id"])
    assert instance.status == "error"
    assert instance.task_state is None
    assert instance.fault.startswith("The build failed: ")
    assert "h01" not in instance.fault  # tenants are not told the host's name (review L2)
    assert not Allocation.objects.exists()
    assert not Port.objects.exists()
    hv = hypervisor_for(cloud.host)
    pool = naming.storage_pool("h01", "instances")
    from hypervisor.base import NotFound

    for volume in (f"instance-{instance.pk}-root", f"instance-{instance.pk}-seed"):
        with pytest.raises(NotFound):
            hv.storage_volume_info(pool, volume)
    operation = Operation.objects.get(pk=created["operation"]["id"])
    assert operation.status == "failed"
    assert operation.error


@pytest.mark.django_db
def test_quota_refusal_creates_nothing(cloud):
    tenant_services.quota_set(actor=SYSTEM, tenant=cloud.tenant, resource="vcpus", limit=0)
    answer = create(cloud.client, cloud.image)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "quota_exceeded"
    assert not Instance.objects.exists()
    assert not Operation.objects.exists()
    assert not Allocation.objects.exists()


@pytest.mark.django_db
def test_a_residency_policy_no_zone_satisfies_is_refused_and_audited(cloud):
    # The ORM: no service changes a tenant's residency once created (as an admin edit would).
    cloud.tenant.residency = ["DE"]
    cloud.tenant.save()
    answer = create(cloud.client, cloud.image)
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "residency_unsatisfiable"
    assert "DE" in error["message"]
    assert not Instance.objects.exists()
    event = AuditEvent.objects.get(action="instance.create", outcome="refused")
    assert event.details["code"] == "residency_unsatisfiable"
    assert event.tenant_id == cloud.tenant.pk


@pytest.mark.django_db
def test_hosts_outside_the_policy_are_never_chosen(cloud):
    german = factories.host("de1", factories.zone("de-fra-1", "DE"), memory_mb=10**7, cpus=1000)
    for n in range(4):
        answer = create(cloud.client, cloud.image, name=f"web-{n}")
        assert answer.status_code == 202
    assert not Allocation.objects.filter(host=german).exists()


@pytest.mark.django_db
def test_no_valid_host_is_a_clear_refusal(cloud):
    factories.flavor("huge", vcpus=10**4, memory_mb=10**8, disk_gb=1)
    tenant_services.quota_set(actor=SYSTEM, tenant=cloud.tenant, resource="vcpus", limit=-1)
    tenant_services.quota_set(actor=SYSTEM, tenant=cloud.tenant, resource="ram_mb", limit=-1)
    answer = create(cloud.client, cloud.image, flavor="huge")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "no_valid_host"
    assert "No valid host" in answer.json()["error"]["message"]
    assert not Instance.objects.exists()


@pytest.mark.django_db
def test_another_tenant_sees_nothing(cloud, make_tenant, make_caller):
    created = create(cloud.client, cloud.image).json()
    other = make_caller(make_tenant("other"), "admin").client()
    assert other.get(f"/api/v1/instances/{created['instance']['id']}").status_code == 404
    assert other.delete(f"/api/v1/instances/{created['instance']['id']}").status_code == 404
    assert other.get(f"/api/v1/operations/{created['operation']['id']}").status_code == 404
    assert other.get("/api/v1/instances").json()["results"] == []
    assert Instance.objects.get().status == "building"


@pytest.mark.django_db(transaction=True)
def test_two_hosts_with_room_for_one_each_place_exactly_two_of_ten(
    live_server, make_tenant, make_caller, image_store, tiny_qcow2
):
    zone = factories.zone("fr-par-1")
    for name in ("h1", "h2"):
        # room for exactly one 1-vCPU / 256 MiB / 1 GiB instance
        factories.host(name, zone, cpus=1, reserved_cpus=0, cpu_allocation_ratio=1.0,
                  memory_mb=256 + 512, disk_gb=10)  # fmt: skip
    factories.flavor("small", vcpus=1, memory_mb=256, disk_gb=1)
    image = factories.public_image(tiny_qcow2, "img")
    caller = make_caller(make_tenant("acme"), "member")
    barrier = threading.Barrier(10)

    def one(n: int) -> tuple[int, dict]:
        barrier.wait(timeout=30)
        body = {"name": f"vm-{n}", "flavor": "small", "image": str(image.pk)}
        return post_json(f"{live_server.url}/api/v1/instances", caller.token, body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(10)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [202, 202] + [409] * 8, results
    assert {body["error"]["code"] for status, body in results if status == 409} == {"no_valid_host"}
    per_host = {h.name: Allocation.objects.filter(host=h).count() for h in Host.objects.all()}
    assert per_host == {"h1": 1, "h2": 1}
    assert Instance.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_thirty_parallel_creates_with_room_for_five_accept_exactly_five(
    live_server, make_tenant, make_caller, image_store, tiny_qcow2
):
    zone = factories.zone("fr-par-1")
    factories.host("h1", zone, cpus=1000, memory_mb=10**6, disk_gb=10**4)
    factories.flavor("small", vcpus=1, memory_mb=256, disk_gb=1)
    image = factories.public_image(tiny_qcow2, "img")
    tenant = make_tenant("acme")
    tenant_services.quota_set(actor=SYSTEM, tenant=tenant, resource="instances", limit=5)
    caller = make_caller(tenant, "member")
    barrier = threading.Barrier(30)

    def one(n: int) -> tuple[int, dict]:
        barrier.wait(timeout=30)
        body = {"name": f"vm-{n}", "flavor": "small", "image": str(image.pk)}
        return post_json(f"{live_server.url}/api/v1/instances", caller.token, body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(one, range(30)))
    statuses = [status for status, _ in results]
    assert statuses.count(202) == 5, results
    assert statuses.count(403) == 25
    assert Instance.objects.count() == 5
    assert Port.objects.filter(device_owner="compute:instance").count() == 5
    addresses = FixedIP.objects.filter(port__device_owner="compute:instance")
    assert len(set(addresses.values_list("ip", flat=True))) == 5


@pytest.mark.django_db
def test_two_instances_may_share_a_name(cloud):
    first = create(cloud.client, cloud.image).json()
    second = create(cloud.client, cloud.image).json()
    assert run_operation(first["operation"]["id"]) == "succeeded"
    assert run_operation(second["operation"]["id"]) == "succeeded"
    assert first["instance"]["ip"] != second["instance"]["ip"]


@pytest.mark.django_db
def test_delete_removes_the_console_logs_rotated_files_too(cloud):
    """M12: virtlogd rotates a console log into .0, .1, …; those hold the tenant's output."""
    from hypervisor.base import StorageVolumeSpec

    first = create(cloud.client, cloud.image).json()
    other = create(cloud.client, cloud.image, name="web-2").json()
    for created in (first, other):
        assert run_operation(created["operation"]["id"]) == "succeeded"
    hv = hypervisor_for(cloud.host)
    pool = naming.storage_pool("h01", "instances")
    rotated = [f"{naming.console_log(i['instance']['id'])}.0" for i in (first, other)]
    for name in rotated:
        hv.create_storage_volume(StorageVolumeSpec(pool, name, 1 << 20, format="raw"))

    answer = cloud.client.delete(f"/api/v1/instances/{first['instance']['id']}")
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    left = {v.name for v in hv.list_storage_volumes(pool)}
    assert rotated[0] not in left
    assert rotated[1] in left  # another instance's log stays
