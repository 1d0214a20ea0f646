"""Server groups on libvirt's fake hypervisor with three hosts: affinity keeps members on
one host, anti-affinity spreads them one per host, under a lock on the group row."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from compute.models import Allocation, Instance, ServerGroup
from hosts.models import Host
from iaas.models import AuditEvent
from operations.worker import run_operation
from tenants import services as tenant_services
from tests import factories
from tests.factories import SYSTEM
from tests.support.instance_api import create
from tests.support.live_http import post_json

URL = "/api/v1/server-groups"


@pytest.fixture
def three(cloud):
    cloud.hosts = [cloud.host, factories.host("h02", cloud.zone), factories.host("h03", cloud.zone)]
    return cloud


def group(client, name: str = "g", policy: str = "anti-affinity") -> dict:
    answer = client.post(URL, {"name": name, "policy": policy}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def host_of(instance_id: str) -> str:
    return Allocation.objects.get(instance_id=instance_id).host.name


@pytest.mark.django_db
def test_anti_affinity_spreads_members_one_per_host_then_refuses(three):
    made = group(three.client)
    assert made["policy"] == "anti-affinity"
    assert made["members"] == []
    ids = []
    for n in range(3):
        answer = create(three.client, three.image, name=f"web-{n}", server_group="g")
        assert answer.status_code == 202, answer.content
        ids.append(answer.json()["instance"]["id"])
    assert sorted(host_of(i) for i in ids) == ["h01", "h02", "h03"]
    fourth = create(three.client, three.image, name="web-3", server_group=made["id"])
    assert fourth.status_code == 409
    error = fourth.json()["error"]
    assert error["code"] == "no_valid_host"
    assert "anti-affinity" in error["message"]
    assert Instance.objects.count() == 3
    shown = three.client.get(f"{URL}/{made['id']}").json()
    assert sorted(shown["members"]) == sorted(ids)
    assert Instance.objects.filter(server_group_id=made["id"]).count() == 3


@pytest.mark.django_db
def test_affinity_places_every_member_on_one_host(three):
    group(three.client, "together", "affinity")
    hosts = set()
    for n in range(4):
        answer = create(three.client, three.image, name=f"db-{n}", server_group="together")
        assert answer.status_code == 202, answer.content
        hosts.add(host_of(answer.json()["instance"]["id"]))
    assert len(hosts) == 1
    # Members of no group still spread over the other hosts.
    free = create(three.client, three.image, name="other")
    assert host_of(free.json()["instance"]["id"]) not in hosts


@pytest.mark.django_db
def test_affinity_when_the_members_host_is_full_is_no_valid_host(three):
    group(three.client, "together", "affinity")
    first = create(three.client, three.image, name="db-0", server_group="together").json()
    # The ORM: the host shrinks under its member (as a failed disk would make it).
    Host.objects.filter(name=host_of(first["instance"]["id"])).update(disk_gb=1)
    answer = create(three.client, three.image, name="db-1", server_group="together")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "no_valid_host"
    assert "(affinity)" in answer.json()["error"]["message"]


@pytest.mark.django_db
def test_deleting_a_member_frees_its_place(three):
    group(three.client)
    created = [
        create(three.client, three.image, name=f"web-{n}", server_group="g").json()
        for n in range(3)
    ]
    for c in created:
        assert run_operation(c["operation"]["id"]) == "succeeded"
    victim = created[1]["instance"]["id"]
    freed = host_of(victim)
    deleting = three.client.delete(f"/api/v1/instances/{victim}")
    assert deleting.status_code == 202
    # Still deleting: it still holds its host.
    assert create(three.client, three.image, name="web-3", server_group="g").status_code == 409
    assert run_operation(deleting.json()["operation"]["id"]) == "succeeded"
    answer = create(three.client, three.image, name="web-3", server_group="g")
    assert answer.status_code == 202, answer.content
    assert host_of(answer.json()["instance"]["id"]) == freed


@pytest.mark.django_db
def test_another_tenants_group_is_invisible_and_unusable(three, make_tenant, make_caller):
    other = make_caller(make_tenant("other"), "admin").client()
    theirs = group(other, "theirs")
    assert three.client.get(f"{URL}/{theirs['id']}").status_code == 404
    assert three.client.delete(f"{URL}/{theirs['id']}").status_code == 404
    assert three.client.get(URL).json()["results"] == []
    for ref in (theirs["id"], "theirs"):
        answer = create(three.client, three.image, server_group=ref)
        assert answer.status_code == 400, answer.content
        assert answer.json()["error"]["code"] == "unknown_server_group"
    assert not Instance.objects.exists()
    assert ServerGroup.objects.filter(pk=theirs["id"]).exists()


@pytest.mark.django_db
def test_a_group_with_members_cannot_be_deleted(three):
    made = group(three.client)
    created = create(three.client, three.image, server_group="g").json()
    refused = three.client.delete(f"{URL}/{made['id']}")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "server_group_in_use"
    run_operation(created["operation"]["id"])
    deleting = three.client.delete(f"/api/v1/instances/{created['instance']['id']}")
    assert run_operation(deleting.json()["operation"]["id"]) == "succeeded"
    assert three.client.delete(f"{URL}/{made['id']}").status_code == 204
    assert not ServerGroup.objects.exists()
    assert Instance.objects.get().server_group is None  # the deleted member keeps its history
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"server_group.create", "server_group.delete"} <= actions


@pytest.mark.django_db
def test_names_policies_and_quota(three):
    group(three.client)
    again = three.client.post(URL, {"name": "g", "policy": "affinity"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_exists"
    bad = three.client.post(URL, {"name": "h", "policy": "soft-affinity"}, format="json")
    assert bad.status_code == 400
    tenant_services.quota_set(actor=SYSTEM, tenant=three.tenant, resource="server_groups", limit=1)
    over = three.client.post(URL, {"name": "h", "policy": "affinity"}, format="json")
    assert over.status_code == 403
    assert over.json()["error"]["code"] == "quota_exceeded"
    assert three.client.get(f"{URL}?policy=anti-affinity").json()["results"][0]["name"] == "g"


@pytest.mark.django_db(transaction=True)
def test_six_parallel_anti_affinity_creates_on_three_hosts_place_exactly_three(
    live_server, make_tenant, make_caller, image_store, tiny_qcow2
):
    zone = factories.zone("fr-par-1")
    for name in ("h1", "h2", "h3"):
        factories.host(name, zone, cpus=1000, memory_mb=10**6, disk_gb=10**4)
    factories.flavor("small", vcpus=1, memory_mb=256, disk_gb=1)
    image = factories.public_image(tiny_qcow2, "img")
    caller = make_caller(make_tenant("acme"), "member")
    status, made = post_json(
        f"{live_server.url}{URL}", caller.token, {"name": "g", "policy": "anti-affinity"}
    )
    assert status == 201, made
    barrier = threading.Barrier(6)

    def one(n: int) -> tuple[int, dict]:
        barrier.wait(timeout=30)
        body = {"name": f"vm-{n}", "flavor": "small", "image": str(image.pk), "server_group": "g"}
        return post_json(f"{live_server.url}/api/v1/instances", caller.token, body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(one, range(6)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [202] * 3 + [409] * 3, results
    assert {body["error"]["code"] for status, body in results if status == 409} == {"no_valid_host"}
    hosts = sorted(Allocation.objects.values_list("host__name", flat=True))
    assert hosts == ["h1", "h2", "h3"]
    assert Instance.objects.filter(server_group_id=made["id"]).count() == 3
