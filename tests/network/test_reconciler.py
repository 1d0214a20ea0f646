"""The reconciler (network.services.convergence.reconcile) against a real NB: what was
changed behind our back with `ovn-nbctl` is found, reported and repaired in one pass; what
is not ours is left alone."""

from __future__ import annotations

import uuid

import pytest

from hypervisor.ovn import Northbound, SwitchSpec, port_group_name
from iaas.models import AuditEvent
from network.services import convergence
from tests.network import nb_view
from tests.network.conftest import remove_rows_of
from tests.network.test_convergence import network_with_subnet, port_on

pytestmark = pytest.mark.django_db


def drift_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="network.drift_repaired").order_by("id"))


def test_an_acl_and_a_port_deleted_behind_our_back_are_restored_and_reported(net, ovn):
    network, _ = network_with_subnet(net.client)
    port, _ = port_on(net.client, network["id"])
    other, _ = port_on(net.client, network["id"])
    pg = port_group_name(port["security_groups"][0])
    central = ovn.central
    before_acls, before_members = nb_view.acls(central, pg), nb_view.members(central, pg)
    before_port = nb_view.one(central, "Logical_Switch_Port", port["id"])
    assert before_port is not None
    egress = ("from-lport", 1002, f"inport == @{pg} && ip4", "allow-related")
    assert egress in before_acls
    assert convergence.reconcile().as_dict() == {"missing": [], "changed": [], "extra": []}
    assert drift_events() == []

    central.nbctl("--type=port-group", "acl-del", pg, "from-lport", "1002", egress[2])
    central.nbctl("lsp-del", port["id"])
    assert egress not in nb_view.acls(central, pg)
    assert nb_view.port_names(central, network["id"]) == {other["id"]}

    drift = convergence.reconcile()

    assert drift.as_dict() == {
        "missing": [f"port {port['id']}"],
        "changed": [f"port group {pg}"],
        "extra": [],
    }
    assert nb_view.acls(central, pg) == before_acls
    assert nb_view.members(central, pg) == before_members == {port["id"], other["id"]}
    restored = nb_view.one(central, "Logical_Switch_Port", port["id"])
    assert restored is not None
    same = ("addresses", "port_security", "type", "options", "external_ids")
    assert {k: restored[k] for k in same} == {k: before_port[k] for k in same}
    assert nb_view.dhcp_options(central, port["id"]) is not None
    events = drift_events()
    assert len(events) == 1
    assert events[0].details == drift.as_dict()
    assert (events[0].target_type, events[0].target_id) == ("ovn", "northbound")

    # A second pass finds nothing to repair, and says nothing.
    assert not convergence.reconcile()
    assert len(drift_events()) == 1


def test_a_switch_of_ours_the_database_does_not_know_is_removed(net, ovn):
    network, _ = network_with_subnet(net.client)
    stray = str(uuid.uuid4())
    with Northbound(ovn.central.nb_remote, owner=ovn.owner, timeout=10) as nb:
        nb.ensure_switch(SwitchSpec(stray, (("tenant", str(net.acme.pk)),)))
    assert nb_view.one(ovn.central, "Logical_Switch", stray) is not None

    drift = convergence.reconcile()

    assert drift.as_dict() == {"missing": [], "changed": [], "extra": [f"switch {stray}"]}
    assert nb_view.one(ovn.central, "Logical_Switch", stray) is None
    assert nb_view.one(ovn.central, "Logical_Switch", network["id"]) is not None
    assert len(drift_events()) == 1


def test_rows_of_another_installation_and_rows_nobody_owns_are_left_alone(net, ovn):
    network_with_subnet(net.client)
    theirs, nobodys = str(uuid.uuid4()), str(uuid.uuid4())
    other_owner = f"other-{uuid.uuid4().hex[:8]}"
    try:
        with Northbound(ovn.central.nb_remote, owner=other_owner, timeout=10) as nb:
            nb.ensure_switch(SwitchSpec(theirs))
        ovn.central.nbctl("ls-add", nobodys)
        ovn.central.nbctl("lsp-add", nobodys, "by-hand")
        before = (
            nb_view.one(ovn.central, "Logical_Switch", theirs),
            nb_view.one(ovn.central, "Logical_Switch", nobodys),
            nb_view.one(ovn.central, "Logical_Switch_Port", "by-hand"),
        )

        assert not convergence.reconcile()

        after = (
            nb_view.one(ovn.central, "Logical_Switch", theirs),
            nb_view.one(ovn.central, "Logical_Switch", nobodys),
            nb_view.one(ovn.central, "Logical_Switch_Port", "by-hand"),
        )
        assert None not in after
        assert after == before
        assert drift_events() == []
    finally:
        remove_rows_of(ovn.central.nb_remote, other_owner)
        ovn.central.nbctl("--if-exists", "ls-del", nobodys)


def test_a_router_nat_a_port_column_and_dhcp_options_changed_behind_our_back_are_repaired(
    net, ovn, external
):
    from tests.network.test_convergence import router_between

    network, subnet = network_with_subnet(net.client)
    port, _ = port_on(net.client, network["id"])
    router_id = router_between(net.client, subnet["id"], external)
    central = ovn.central
    nats = nb_view.router_nats(central, router_id)
    dhcp = nb_view.dhcp_options(central, port["id"])
    assert dhcp is not None
    row = nb_view.one(central, "Logical_Switch_Port", port["id"])
    assert row is not None
    assert not convergence.reconcile()

    central.nbctl("lr-nat-del", router_id, "snat", "198.51.100.0/24")
    central.nbctl("lsp-set-port-security", port["id"])  # spoofing allowed
    central.nbctl("set", "DHCP_Options", dhcp["_uuid"], "options:router=198.51.100.99")

    drift = convergence.reconcile()

    assert drift.as_dict() == {
        "missing": [],
        "changed": [f"port {port['id']}", f"router {router_id}"],
        "extra": [],
    }
    assert nb_view.router_nats(central, router_id) == nats
    restored = nb_view.one(central, "Logical_Switch_Port", port["id"])
    assert restored is not None
    assert restored["port_security"] == row["port_security"]
    repaired = nb_view.dhcp_options(central, port["id"])
    assert repaired is not None
    assert repaired["options"] == dhcp["options"]
    assert len(drift_events()) == 1
    assert not convergence.reconcile()
