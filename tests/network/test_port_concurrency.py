"""Issue 10, "Done means": 300 parallel port creates, 50 connections at a time, against a
subnet whose pool holds exactly 200 addresses, on PostgreSQL and over real HTTP
(`live_server`): exactly 200 succeed with distinct addresses, 100 get `409
no_address_available`, and once converged the NB holds exactly those 200 ports."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from django.db import connection

from hypervisor.ovn import port_group_name
from network.models import FixedIP, Port, SecurityGroup
from network.services import convergence
from network.services.networks import network_create
from network.services.subnets import subnet_create
from tenants import services as tenant_services
from tests.factories import SYSTEM
from tests.network import nb_view
from tests.support.live_http import post_json

CREATES = 300
POOL = 200
CONNECTIONS = 50
WORKERS = 8


def converge_port(port_id: str) -> None:
    """A control worker's task, in a thread of its own (and its own database connection)."""
    try:
        convergence.converge_port(port_id)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_300_parallel_port_creates_on_a_pool_of_200_make_exactly_200_ports(
    live_server, make_tenant, make_caller, ovn
):
    tenant = make_tenant("acme")
    tenant_services.quota_set(actor=SYSTEM, tenant=tenant, resource="ports", limit=CREATES)
    caller = make_caller(tenant, "member")
    network = network_create(actor=SYSTEM, tenant=tenant, name="crowded")
    subnet = subnet_create(
        actor=SYSTEM, tenant=tenant, network=network, cidr="198.51.100.0/24",
        allocation_pools=[{"start": "198.51.100.10", "end": "198.51.100.209"}],
    )  # fmt: skip
    url = f"{live_server.url}/api/v1/ports"

    def one(n: int) -> tuple[int, dict]:
        return post_json(url, caller.token, {"network": str(network.pk), "name": f"p{n}"})

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=CONNECTIONS) as pool:
        results = list(pool.map(one, range(CREATES)))
    took = time.monotonic() - start
    print(f"\n{CREATES} port creates, {CONNECTIONS} at a time: {took:.1f} s")

    created = [body for status, body in results if status == 201]
    refused = [body for status, body in results if status != 201]
    assert len(created) == POOL, sorted({status for status, _ in results})
    assert len(refused) == CREATES - POOL
    assert {status for status, _ in results} == {201, 409}
    assert {body["error"]["code"] for body in refused} == {"no_address_available"}
    addresses = [body["fixed_ips"][0]["ip_address"] for body in created]
    assert len(set(addresses)) == POOL
    pool_range = {f"198.51.100.{n}" for n in range(10, 210)}
    assert set(addresses) == pool_range
    assert Port.objects.filter(network=network).count() == POOL
    assert FixedIP.objects.filter(subnet=subnet).count() == POOL

    # What the control workers run: one task per port (sent as each create committed),
    # several at a time.
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(converge_port, [body["id"] for body in created]))
    took = time.monotonic() - start
    print(f"converging the {POOL} ports, {WORKERS} workers: {took:.1f} s")
    group = SecurityGroup.objects.get(tenant=tenant, is_default=True)
    members = nb_view.members(ovn.central, port_group_name(str(group.pk)))
    assert members == {body["id"] for body in created}, f"{POOL - len(members)} ports missing"

    start = time.monotonic()
    convergence.converge_network(network.pk)
    took = time.monotonic() - start
    print(f"converging the network with its {POOL} ports: {took:.1f} s")
    on_switch = nb_view.port_names(ovn.central, str(network.pk))
    assert on_switch == {body["id"] for body in created}
    ports = nb_view.rows(ovn.central, "Logical_Switch_Port", ovn.owner)
    assert sorted(p["addresses"].split()[1] for p in ports) == sorted(addresses)
    assert set(Port.objects.filter(network=network).values_list("status", flat=True)) == {"active"}
