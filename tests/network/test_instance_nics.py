"""An instance's NICs: on the default network, on networks it names, or on ports it is
given; released (or given back) when it goes. On libvirt's fake hypervisor."""

from __future__ import annotations

import pytest

from network.models import Network, Port
from operations.worker import run_operation
from tests.support.api_checks import assert_error
from tests.support.instance_api import create

pytestmark = pytest.mark.django_db


def network(client, name, cidr):
    made = client.post("/api/v1/networks", {"name": name}, format="json").json()
    subnet = client.post(
        "/api/v1/subnets", {"network": made["id"], "cidr": cidr}, format="json"
    ).json()
    return made, subnet


def test_without_networks_an_instance_gets_a_port_on_the_default_network(cloud):
    created = create(cloud.client, cloud.image).json()
    default = Network.objects.get(tenant=cloud.tenant, is_default=True)
    port = Port.objects.get(device_id=created["instance"]["id"])
    assert port.network == default
    assert port.device_owner == "compute:instance"
    assert [g.name for g in port.security_groups.all()] == ["default"]
    assert created["instance"]["ip"] == port.fixed_ips.get().ip


def test_named_networks_and_a_given_port_become_its_nics_in_order(cloud):
    front, _ = network(cloud.client, "front", "198.51.100.0/24")
    back, _ = network(cloud.client, "back", "192.0.2.0/24")
    spare = cloud.client.post("/api/v1/ports", {"network": back["id"], "name": "spare"},
                              format="json").json()  # fmt: skip
    created = create(
        cloud.client, cloud.image, networks=["front", back["id"]], ports=[spare["id"]]
    ).json()
    instance_id = created["instance"]["id"]
    ports = cloud.client.get(f"/api/v1/ports?device_id={instance_id}").json()["results"]
    ports.sort(key=lambda p: p["device_index"])
    assert [p["network"] for p in ports] == [front["id"], back["id"], back["id"]]
    assert created["instance"]["ip"] == "198.51.100.2"
    assert run_operation(created["operation"]["id"]) == "succeeded"

    deleted = cloud.client.delete(f"/api/v1/instances/{instance_id}").json()
    assert run_operation(deleted["operation"]["id"]) == "succeeded"
    # The ports made for it are gone; the one it was given is free again, address kept.
    left = Port.objects.filter(network_id__in=[front["id"], back["id"]])
    assert [(p.name, p.device_id) for p in left] == [("spare", None)]
    assert left.get().fixed_ips.get().ip == spare["fixed_ips"][0]["ip_address"]


def test_a_port_in_use_or_another_tenants_network_is_refused_and_nothing_is_made(
    cloud, make_tenant, make_caller
):
    other = make_caller(make_tenant("globex"), "member").client()
    theirs, _ = network(other, "theirs", "198.51.100.0/24")
    refused = create(cloud.client, cloud.image, networks=[theirs["id"]])
    assert_error(refused, 400, "unknown_network")
    mine, _ = network(cloud.client, "mine", "192.0.2.0/24")
    port = cloud.client.post("/api/v1/ports", {"network": mine["id"]}, format="json").json()
    assert create(cloud.client, cloud.image, ports=[port["id"]]).status_code == 202
    again = create(cloud.client, cloud.image, name="web-2", ports=[port["id"]])
    assert_error(again, 409, "port_in_use")
    assert Port.objects.filter(device_owner="compute:instance").count() == 1


def test_an_attach_the_hypervisor_cannot_do_fails_cleanly_and_leaves_no_port(cloud):
    """libvirt's fake hypervisor cannot hot-plug (Unsupported): the operation fails with a
    reason, the port made for it goes, the instance is idle and keeps its one NIC."""
    created = create(cloud.client, cloud.image).json()
    instance_id = created["instance"]["id"]
    assert run_operation(created["operation"]["id"]) == "succeeded"
    other, _ = network(cloud.client, "other", "192.0.2.0/24")
    answer = cloud.client.post(
        f"/api/v1/instances/{instance_id}/interfaces", {"network": "other"}, format="json"
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["port"]["device_index"] == 1
    busy = cloud.client.post(
        f"/api/v1/instances/{instance_id}/interfaces", {"network": "other"}, format="json"
    )
    assert_error(busy, 409, "wrong_state")
    assert run_operation(answer.json()["operation"]["id"]) == "failed"
    shown = cloud.client.get(f"/api/v1/instances/{instance_id}").json()
    assert shown["task_state"] is None
    assert shown["fault"].startswith("The attach_interface failed")
    assert not Port.objects.filter(network_id=other["id"]).exists()
    nics = cloud.client.get(f"/api/v1/instances/{instance_id}/interfaces").json()
    assert len(nics) == 1


def test_detaching_a_port_that_is_not_the_instances_is_refused(cloud):
    created = create(cloud.client, cloud.image).json()
    instance_id = created["instance"]["id"]
    assert run_operation(created["operation"]["id"]) == "succeeded"
    mine, _ = network(cloud.client, "mine", "192.0.2.0/24")
    free = cloud.client.post("/api/v1/ports", {"network": mine["id"]}, format="json").json()
    refused = cloud.client.post(
        f"/api/v1/instances/{instance_id}/detach-interface", {"port": free["id"]}, format="json"
    )
    assert_error(refused, 400, "not_an_interface")
    assert Port.objects.get(pk=free["id"]).device_id is None


def test_an_attach_abandoned_past_its_deadline_gives_its_port_back(cloud):
    """A worker that never finished the attach (it died, its host was lost): the sweeper
    fails the operation and the port made for it goes; the instance keeps its one NIC."""
    from datetime import timedelta

    from django.utils import timezone

    from operations.models import Operation
    from operations.services.deadlines import fail_overdue_operations

    created = create(cloud.client, cloud.image).json()
    instance_id = created["instance"]["id"]
    assert run_operation(created["operation"]["id"]) == "succeeded"
    other, _ = network(cloud.client, "other", "192.0.2.0/24")
    answer = cloud.client.post(
        f"/api/v1/instances/{instance_id}/interfaces", {"network": "other"}, format="json"
    ).json()
    assert Port.objects.filter(network_id=other["id"]).exists()
    Operation.objects.filter(pk=answer["operation"]["id"]).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    assert fail_overdue_operations() == [answer["operation"]["id"]]
    assert not Port.objects.filter(network_id=other["id"]).exists()
    assert len(cloud.client.get(f"/api/v1/instances/{instance_id}/interfaces").json()) == 1
    assert cloud.client.get(f"/api/v1/instances/{instance_id}").json()["task_state"] is None
