"""Fixtures of the OVN northbound driver tests: a real NB `ovsdb-server` (never a fake),
private to the test run (tests/support/ovn_central.py), and a `Northbound` per test with an
owner of its own, so tests sharing the database never see each other's rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from hypervisor.ovn import Northbound
from tests.support.ovn_central import OvnCentral

#: Generous: the bound itself is tested with short timeouts; this only stops a hung run.
TIMEOUT = 10.0


@pytest.fixture(scope="session")
def ovn_central() -> Iterator[OvnCentral]:
    """The NB alone: no northd writing behind the tests' back, so rows compare exactly."""
    with OvnCentral() as central:
        yield central


@pytest.fixture(scope="module")
def ovn_central_northd() -> Iterator[OvnCentral]:
    """NB, SB and ovn-northd: for tests that read the logical flows (`ovn-trace`)."""
    with OvnCentral(northd=True) as central:
        yield central


def _northbound(central: OvnCentral) -> Iterator[Northbound]:
    nb = Northbound(central.nb_remote, owner=f"test-{uuid.uuid4().hex[:12]}", timeout=TIMEOUT)
    try:
        yield nb
    finally:
        # The test's rows go with it (its owner is its own: nothing else is touched).
        inventory = nb.inventory()
        for router in inventory.routers:
            nb.delete_router(router.name)
        for group in inventory.port_groups:
            nb.delete_port_group(group.name)
        for switch in inventory.switches:
            nb.delete_switch(switch.name)
        nb.close()


@pytest.fixture
def nb(ovn_central: OvnCentral) -> Iterator[Northbound]:
    yield from _northbound(ovn_central)


@pytest.fixture
def nb_northd(ovn_central_northd: OvnCentral) -> Iterator[Northbound]:
    yield from _northbound(ovn_central_northd)


@pytest.fixture
def private_central() -> Iterator[OvnCentral]:
    """An NB of the test's own, which it may stop, freeze or restart."""
    with OvnCentral() as central:
        yield central


def new_id() -> str:
    return str(uuid.uuid4())
