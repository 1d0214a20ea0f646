"""Networks and subnets through the API: what a tenant makes, sees and is refused."""

from __future__ import annotations

import pytest

from network.models import Network, Subnet
from tests.support.api_checks import assert_error

pytestmark = pytest.mark.django_db


def make_network(client, name="app", cidr="198.51.100.0/24", **subnet):
    network = client.post("/api/v1/networks", {"name": name}, format="json")
    assert network.status_code == 201, network.json()
    created = client.post(
        "/api/v1/subnets", {"network": network.json()["id"], "cidr": cidr, **subnet},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    return network.json(), created.json()


def test_a_subnet_gets_the_first_address_as_gateway_and_the_rest_as_its_pool(net):
    network, subnet = make_network(net.client)
    assert subnet["gateway_ip"] == "198.51.100.1"
    assert subnet["allocation_pools"] == [{"start": "198.51.100.2", "end": "198.51.100.254"}]
    assert subnet["usage"] == {"used": 0, "total": 253}
    shown = net.client.get(f"/api/v1/networks/{network['id']}").json()
    assert shown["subnets"] == [subnet["id"]]
    assert shown["owned"] is True
    assert shown["mtu"] == 1442
    assert shown["status"] == "building"


def test_tenants_may_use_the_same_cidr_but_one_network_may_not_overlap_itself(net):
    network, _ = make_network(net.client)
    make_network(net.other, name="app", cidr="198.51.100.0/24")  # globex: the same range
    overlap = net.client.post(
        "/api/v1/subnets", {"network": network["id"], "cidr": "198.51.100.128/25"}, format="json"
    )
    assert_error(overlap, 409, "subnet_overlap")
    assert Subnet.objects.filter(network_id=network["id"]).count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"cidr": "198.51.100.1/24"}, "invalid_cidr"),  # host bits set
        ({"cidr": "2001:db8::/64"}, "ip_version_not_supported"),
        ({"cidr": "10.0.0.0/8"}, "invalid_cidr"),  # too large
        ({"cidr": "198.51.100.0/24", "gateway_ip": "192.0.2.1"}, "invalid_gateway"),
        (
            {
                "cidr": "198.51.100.0/24",
                "allocation_pools": [{"start": "198.51.100.1", "end": "198.51.100.9"}],
            },
            "invalid_allocation_pool",  # holds the gateway
        ),
        (
            {
                "cidr": "198.51.100.0/24",
                "allocation_pools": [
                    {"start": "198.51.100.10", "end": "198.51.100.20"},
                    {"start": "198.51.100.15", "end": "198.51.100.30"},
                ],
            },
            "invalid_allocation_pool",  # overlapping pools
        ),
        ({"cidr": "198.51.100.0/24", "dns_nameservers": ["not-an-ip"]}, "invalid"),
    ],
)
def test_a_bad_subnet_is_refused_and_changes_nothing(net, body, code):
    network = net.client.post("/api/v1/networks", {"name": "app"}, format="json").json()
    answer = net.client.post("/api/v1/subnets", {"network": network["id"], **body}, format="json")
    assert_error(answer, 400, code)
    assert not Subnet.objects.exists()


def test_another_tenants_network_is_not_found(net):
    network, subnet = make_network(net.client)
    assert_error(net.other.get(f"/api/v1/networks/{network['id']}"), 404, "not_found")
    assert_error(net.other.delete(f"/api/v1/subnets/{subnet['id']}"), 404, "not_found")
    foreign = net.other.post(
        "/api/v1/subnets", {"network": network["id"], "cidr": "192.0.2.0/24"}, format="json"
    )
    assert_error(foreign, 400, "invalid")
    assert Subnet.objects.count() == 1


def test_a_reader_sees_networks_but_cannot_make_them(net):
    make_network(net.client)
    assert [n["name"] for n in net.reader.get("/api/v1/networks").json()["results"]] == ["app"]
    refused = net.reader.post("/api/v1/networks", {"name": "x"}, format="json")
    assert refused.status_code == 403, refused.json()
    assert Network.objects.count() == 1


def test_a_network_with_ports_cannot_be_deleted_but_an_empty_one_can(net):
    network, subnet = make_network(net.client)
    port = net.client.post("/api/v1/ports", {"network": network["id"]}, format="json").json()
    assert_error(net.client.delete(f"/api/v1/networks/{network['id']}"), 409, "network_in_use")
    assert_error(net.client.delete(f"/api/v1/subnets/{subnet['id']}"), 409, "subnet_in_use")
    assert net.client.delete(f"/api/v1/ports/{port['id']}").status_code == 204
    assert net.client.delete(f"/api/v1/networks/{network['id']}").status_code == 204
    assert not Network.objects.exists()
    assert not Subnet.objects.exists()


def test_the_networks_quota_is_enforced(net):
    net.client.post("/api/v1/networks", {"name": "one"}, format="json")
    from tenants.models import Quota

    Quota.objects.create(tenant=net.acme, resource="networks", limit=1)
    assert_error(
        net.client.post("/api/v1/networks", {"name": "two"}, format="json"), 403, "quota_exceeded"
    )
    assert Network.objects.count() == 1


def test_names_are_unique_per_tenant_and_renaming_checks_them(net):
    make_network(net.client, name="app")
    other, _ = make_network(net.client, name="db", cidr="192.0.2.0/24")
    duplicate = net.client.post("/api/v1/networks", {"name": "app"}, format="json")
    assert_error(duplicate, 409, "already_exists")
    renamed = net.client.patch(f"/api/v1/networks/{other['id']}", {"name": "app"}, format="json")
    assert_error(renamed, 409, "already_exists")
    ok = net.client.patch(f"/api/v1/networks/{other['id']}", {"name": "data"}, format="json")
    assert ok.status_code == 200
    assert ok.json()["name"] == "data"


def test_the_operators_external_network_is_visible_but_not_the_tenants_to_change(net, external):
    listed = net.client.get("/api/v1/networks").json()["results"]
    assert [(n["name"], n["external"], n["owned"]) for n in listed] == [("public", True, False)]
    assert_error(net.client.delete(f"/api/v1/networks/{external.pk}"), 403, "operator_network")
    port = net.client.post("/api/v1/ports", {"network": str(external.pk)}, format="json")
    assert_error(port, 400, "external_network")
    assert Network.objects.filter(pk=external.pk).exists()
