"""Fixtures of the network tests: a tenant's member client, an operator's external network
with a floating-IP pool, and a real OVN northbound `ovsdb-server` (never a fake) that the
convergence writes into (tests/support/ovn_central.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from hypervisor.ovn import Northbound
from network import northbound
from network.models import Network
from network.services.networks import provider_network_create
from network.services.subnets import subnet_create
from tenants.models import Tenant
from tests.factories import SYSTEM
from tests.support.ovn_central import OvnCentral

#: Generous: the fault tests set their own short bound; this only stops a hung run.
OVN_TIMEOUT = 10
#: The chassis router gateways are pinned to (no chassis runs here: the NB only records it).
GATEWAY_CHASSIS = "chassis-x"


@pytest.fixture
def net(db: None, make_tenant: Callable[..., Tenant], make_caller: Callable[..., Any]):
    """Tenants acme (a member and a reader) and globex (a member)."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    member, reader = make_caller(acme, "member"), make_caller(acme, "reader")
    other = make_caller(globex, "member")
    return SimpleNamespace(
        acme=acme, globex=globex, client=member.client(), reader=reader.client(),
        other=other.client(),
    )  # fmt: skip


@pytest.fixture
def external(db: None) -> Network:
    """The operators' external network `public` with the pool 203.0.113.130-.140."""
    network = provider_network_create(actor=SYSTEM, name="public", physical_network="physnet1")
    subnet_create(
        actor=SYSTEM, tenant=None, network=network, cidr="203.0.113.128/25",
        gateway_ip="203.0.113.129",
        allocation_pools=[{"start": "203.0.113.130", "end": "203.0.113.140"}],
    )  # fmt: skip
    return network


@pytest.fixture(scope="session")
def nb_central() -> Iterator[OvnCentral]:
    """One NB `ovsdb-server` for the session's network tests (no northd: what the
    convergence wrote is what the tests read back, nothing else writes)."""
    with OvnCentral() as central:
        yield central


def remove_rows_of(remote: str, owner: str) -> None:
    """Delete every NB row `owner` wrote (nobody else's: the driver only lists its own)."""
    with Northbound(remote, owner=owner, timeout=OVN_TIMEOUT) as nb:
        inventory = nb.inventory()
        for router in inventory.routers:
            nb.delete_router(router.name)
        for group in inventory.port_groups:
            nb.delete_port_group(group.name)
        for switch in inventory.switches:
            nb.delete_switch(switch.name)


def point_settings_at(settings: Any, central: OvnCentral) -> str:
    """settings.OVN_* aimed at `central` with an owner of the test's own; returns it."""
    owner = f"test-{uuid.uuid4().hex[:12]}"
    settings.OVN_NB_REMOTE = central.nb_remote
    settings.OVN_OWNER = owner
    settings.OVN_TIMEOUT_SECONDS = OVN_TIMEOUT
    settings.OVN_GATEWAY_CHASSIS = [GATEWAY_CHASSIS]
    return owner


@pytest.fixture
def ovn(nb_central: OvnCentral, settings: Any) -> Iterator[SimpleNamespace]:
    """settings.OVN_NB_REMOTE on the session's NB, with an OVN_OWNER of the test's own (so
    tests never see each other's rows); the test's rows and connections go after it."""
    owner = point_settings_at(settings, nb_central)
    try:
        yield SimpleNamespace(central=nb_central, owner=owner)
    finally:
        northbound.close_all()
        remove_rows_of(nb_central.nb_remote, owner)


@pytest.fixture
def private_ovn(settings: Any) -> Iterator[SimpleNamespace]:
    """An NB of the test's own, which it may stop, freeze or restart (fault tests)."""
    with OvnCentral() as central:
        owner = point_settings_at(settings, central)
        try:
            yield SimpleNamespace(central=central, owner=owner)
        finally:
            northbound.close_all()
