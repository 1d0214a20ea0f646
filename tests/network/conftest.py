"""Fixtures of the network tests: a tenant's member client, and an operator's external
network with a floating-IP pool."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from network.models import Network
from network.services.networks import provider_network_create
from network.services.subnets import subnet_create
from tenants.models import Tenant
from tests.factories import SYSTEM


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
