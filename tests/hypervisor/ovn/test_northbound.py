"""`Northbound` against a real NB ovsdb-server: idempotency, convergence, ownership, bounds.

What a test observes is what the NB holds, read with OVN's own `ovn-nbctl` / `ovsdb-client`
(or, for the reconciler's view, `inventory()`)."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
import time
from typing import Any

import pytest

from hypervisor.base import NotFound, SpecConflict, TransientError
from hypervisor.ovn import (
    AclRuleSpec,
    DhcpSpec,
    NatSpec,
    Northbound,
    PortGroupSpec,
    RouterPortSpec,
    RouterSpec,
    SwitchPortSpec,
    SwitchSpec,
    acls_for,
    localnet_port,
    port_group_name,
    router_interface,
)
from tests.hypervisor.ovn.conftest import new_id
from tests.support.ovn_central import OvnCentral

DHCP = DhcpSpec(
    "10.0.0.0/24", "10.0.0.1", "0a:00:00:00:00:01", ("198.51.100.53",), lease_time=600, mtu=1442
)


def vif(switch: str, n: int, port_groups: tuple[str, ...] = ()) -> SwitchPortSpec:
    return SwitchPortSpec(
        new_id(),
        switch,
        f"0a:00:00:00:01:{n:02x}",
        (f"10.0.0.{n}",),
        dhcp=DHCP,
        port_groups=port_groups,
    )


def nb_json(central: OvnCentral, *args: str) -> list[dict[str, Any]]:
    """`ovn-nbctl --format=json list …` as a list of {column: value} dicts."""
    out = json.loads(central.nbctl("--format=json", *args))
    return [dict(zip(out["headings"], row, strict=True)) for row in out["data"]]


def a_network(nb: Northbound) -> str:
    name = new_id()
    nb.ensure_switch(SwitchSpec(name, (("tenant", "t1"),), mtu=1442))
    return name


def world(nb: Northbound) -> tuple[SwitchPortSpec, PortGroupSpec, RouterSpec]:
    """A network with a port in a security group and a router with SNAT and a floating IP."""
    net = a_network(nb)
    public = new_id()
    nb.ensure_switch(SwitchSpec(public))
    nb.ensure_switch_port(localnet_port(new_id(), public, "physnet1"))
    group = PortGroupSpec(
        port_group_name(new_id()), rules=(AclRuleSpec("ingress", protocol="tcp", port_min=22),)
    )
    nb.ensure_port_group(group)
    port = vif(net, 10, port_groups=(group.name,))
    nb.ensure_switch_port(port)
    inside, inside_peer = router_interface(new_id(), net, "0a:00:00:00:00:01", ("10.0.0.1/24",))
    outside, outside_peer = router_interface(
        new_id(), public, "0a:00:00:00:02:01", ("203.0.113.10/24",), gateway_chassis=("ch1",)
    )
    nb.ensure_switch_port(inside_peer)
    nb.ensure_switch_port(outside_peer)
    router = RouterSpec(
        new_id(),
        ports=(inside, outside),
        nats=(
            NatSpec("snat", "203.0.113.10", "10.0.0.0/24"),
            NatSpec("dnat_and_snat", "203.0.113.22", "10.0.0.10"),
        ),
        static_routes=(("0.0.0.0/0", "203.0.113.1"),),
    )
    nb.ensure_router(router)
    return port, PortGroupSpec(group.name, (port.name,), group.rules), router


def test_a_port_is_written_as_ovn_needs_it(nb: Northbound, ovn_central: OvnCentral) -> None:
    net = a_network(nb)
    port = vif(net, 10)
    nb.ensure_switch_port(port)

    (row,) = nb_json(ovn_central, "list", "Logical_Switch_Port", port.name)
    assert row["addresses"] == "0a:00:00:00:01:0a 10.0.0.10"
    assert row["port_security"] == "0a:00:00:00:01:0a 10.0.0.10"
    (dhcp,) = nb_json(ovn_central, "list", "DHCP_Options", row["dhcpv4_options"][1])
    assert dhcp["cidr"] == "10.0.0.0/24"
    assert dict(dhcp["options"][1]) == {
        "lease_time": "600",
        "router": "10.0.0.1",
        "server_id": "10.0.0.1",
        "server_mac": "0a:00:00:00:00:01",
        "dns_server": "{198.51.100.53}",
        "mtu": "1442",
    }
    assert port.name in ovn_central.nbctl("lsp-list", net)
    assert nb.switch_port_up(port.name) is False  # no chassis has bound it


def test_ports_of_one_subnet_share_one_dhcp_row_which_goes_with_the_last_port(
    nb: Northbound, ovn_central: OvnCentral
) -> None:
    net = a_network(nb)
    first, second = vif(net, 10), vif(net, 11)
    nb.ensure_switch_port(first)
    nb.ensure_switch_port(second)
    rows = [r for r in nb_json(ovn_central, "list", "DHCP_Options") if net in str(r)]
    assert len(rows) == 1
    nb.delete_switch_port(first.name)
    assert [r for r in nb_json(ovn_central, "list", "DHCP_Options") if net in str(r)]
    nb.delete_switch_port(second.name)
    assert not [r for r in nb_json(ovn_central, "list", "DHCP_Options") if net in str(r)]
    nb.delete_switch_port(second.name)  # gone already: a no-op


def test_a_second_ensure_changes_no_row(nb: Northbound, ovn_central: OvnCentral) -> None:
    port, group, router = world(nb)
    before = ovn_central.dump()
    nb.ensure_switch(SwitchSpec(port.switch, (("tenant", "t1"),), mtu=1442))
    nb.ensure_switch_port(port)
    nb.ensure_port_group(group)
    nb.ensure_router(router)
    assert ovn_central.dump() == before


def test_inventory_reads_back_what_was_written(nb: Northbound) -> None:
    port, group, router = world(nb)
    inventory = nb.inventory()
    assert port in inventory.switch_ports
    assert router in inventory.routers
    (state,) = inventory.port_groups
    assert state.ports == (port.name,)
    assert state.acls == acls_for(group.name, group.rules)
    assert SwitchSpec(port.switch, (("tenant", "t1"),), mtu=1442) in inventory.switches
    assert len(inventory.switch_ports) == 4  # the VIF, the localnet port, two router peers
    assert inventory.unreadable == ()


def test_a_port_converges_to_a_changed_spec(nb: Northbound, ovn_central: OvnCentral) -> None:
    net = a_network(nb)
    port = vif(net, 10)
    nb.ensure_switch_port(port)
    moved = SwitchPortSpec(port.name, net, "0a:00:00:00:01:0b", ("10.0.0.11",), dhcp=DHCP)
    nb.ensure_switch_port(moved)
    (row,) = nb_json(ovn_central, "list", "Logical_Switch_Port", port.name)
    assert row["addresses"] == "0a:00:00:00:01:0b 10.0.0.11"
    assert row["port_security"] == "0a:00:00:00:01:0b 10.0.0.11"
    open_port = SwitchPortSpec(port.name, net, "0a:00:00:00:01:0b", ("10.0.0.11",), False)
    nb.ensure_switch_port(open_port)
    (row,) = nb_json(ovn_central, "list", "Logical_Switch_Port", port.name)
    assert row["port_security"] == ["set", []]
    assert row["dhcpv4_options"] == ["set", []]
    assert nb.inventory().switch_ports == (open_port,)


def test_a_port_group_converges_its_ports_and_acls(nb: Northbound, ovn_central: OvnCentral) -> None:
    net = a_network(nb)
    a, b = vif(net, 10), vif(net, 11)
    nb.ensure_switch_port(a)
    nb.ensure_switch_port(b)
    ssh = AclRuleSpec("ingress", protocol="tcp", port_min=22)
    web = AclRuleSpec("ingress", protocol="tcp", port_min=80)
    group = port_group_name(new_id())
    nb.ensure_port_group(PortGroupSpec(group, (a.name, b.name), (ssh, web)))
    nb.ensure_port_group(PortGroupSpec(group, (b.name,), (ssh,)))

    (state,) = nb.inventory().port_groups
    assert state.ports == (b.name,)
    assert "tcp.dst == 80" not in ovn_central.nbctl("acl-list", group)
    assert state.acls == acls_for(group, (ssh,))


def test_acls_changed_behind_our_back_are_put_back(nb: Northbound, ovn_central: OvnCentral) -> None:
    group = PortGroupSpec(
        port_group_name(new_id()), rules=(AclRuleSpec("ingress", protocol="tcp", port_min=22),)
    )
    nb.ensure_port_group(group)
    ours = ovn_central.nbctl("acl-list", group.name)
    ovn_central.nbctl(
        "--type=port-group", "acl-add", group.name, "to-lport", "1002",
        f"outport == @{group.name} && tcp", "allow-related",
    )  # fmt: skip
    ovn_central.nbctl(
        "--type=port-group", "acl-del", group.name, "to-lport", "1001",
        f"outport == @{group.name} && ip",
    )  # fmt: skip
    assert ovn_central.nbctl("acl-list", group.name) != ours

    nb.ensure_port_group(group)
    assert ovn_central.nbctl("acl-list", group.name) == ours


def test_a_router_converges_ports_nats_and_routes(nb: Northbound, ovn_central: OvnCentral) -> None:
    _, _, router = world(nb)
    (outside,) = [p for p in router.ports if p.gateway_chassis]
    (inside,) = [p for p in router.ports if not p.gateway_chassis]
    smaller = RouterSpec(
        router.name,
        ports=(outside,),
        nats=(NatSpec("dnat_and_snat", "203.0.113.23", "10.0.0.10"),),
        static_routes=(("0.0.0.0/0", "203.0.113.254"),),
    )
    nb.ensure_router(smaller)
    assert nb.inventory().routers == (smaller,)
    shown = ovn_central.nbctl("show", router.name)
    assert inside.name not in shown
    assert "203.0.113.23" in shown
    assert "203.0.113.22" not in shown
    assert "203.0.113.254" in ovn_central.nbctl("lr-route-list", router.name)
    (gateway,) = nb_json(ovn_central, "list", "Gateway_Chassis")
    assert gateway["chassis_name"] == "ch1"
    moved = RouterPortSpec(outside.name, outside.mac, outside.networks, ("ch2", "ch1"))
    nb.ensure_router(RouterSpec(router.name, ports=(moved,)))
    chassis = {
        r["chassis_name"]: r["priority"] for r in nb_json(ovn_central, "list", "Gateway_Chassis")
    }
    assert chassis == {"ch2": 2, "ch1": 1}


def test_deletes_take_children_with_them_and_are_noops_when_gone(
    nb: Northbound, ovn_central: OvnCentral
) -> None:
    port, group, router = world(nb)
    nb.delete_router(router.name)
    nb.delete_port_group(group.name)
    inventory = nb.inventory()
    for switch in inventory.switches:
        nb.delete_switch(switch.name)
    for delete, name in [
        (nb.delete_router, router.name),
        (nb.delete_port_group, group.name),
        (nb.delete_switch, port.switch),
        (nb.delete_switch_port, port.name),
    ]:
        delete(name)
    dump = ovn_central.dump()
    assert not [
        (table, row) for table, rows in dump.items() for row in rows if nb.owner in json.dumps(row)
    ]


def test_missing_parents_are_not_found(nb: Northbound) -> None:
    with pytest.raises(NotFound):
        nb.ensure_switch_port(vif(new_id(), 10))
    net = a_network(nb)
    with pytest.raises(NotFound):
        nb.ensure_switch_port(vif(net, 10, port_groups=(port_group_name(new_id()),)))
    with pytest.raises(NotFound):
        nb.switch_port_up(new_id())


def test_a_group_takes_the_members_that_exist_and_the_others_join_when_created(
    nb: Northbound, ovn_central: OvnCentral
) -> None:
    net = a_network(nb)
    group = port_group_name(new_id())
    early, late = vif(net, 10), vif(net, 11, port_groups=(group,))

    def members() -> list[str]:
        return next(list(g.ports) for g in nb.inventory().port_groups if g.name == group)

    nb.ensure_switch_port(early)
    nb.ensure_port_group(PortGroupSpec(group, (early.name, late.name)))
    assert members() == [early.name]
    nb.ensure_switch_port(late)
    assert sorted(members()) == sorted([early.name, late.name])
    nb.ensure_port_group(PortGroupSpec(group, (early.name, late.name)))  # converged: no change
    assert sorted(members()) == sorted([early.name, late.name])


def test_two_owners_on_one_nb_neither_see_nor_touch_each_others_rows(
    nb: Northbound, ovn_central: OvnCentral
) -> None:
    port, group, router = world(nb)
    other = Northbound(ovn_central.nb_remote, owner="another-installation", timeout=5)
    try:
        assert other.inventory().switches == ()
        assert other.inventory().routers == ()
        with pytest.raises(SpecConflict):
            other.ensure_switch(SwitchSpec(port.switch))
        with pytest.raises(SpecConflict):
            other.ensure_switch_port(port)
        with pytest.raises(SpecConflict):
            other.ensure_port_group(PortGroupSpec(group.name))
        with pytest.raises(SpecConflict):
            other.ensure_router(RouterSpec(router.name))
        with pytest.raises(SpecConflict):
            other.delete_switch_port(port.name)
        with pytest.raises(SpecConflict):
            other.delete_switch(port.switch)
        with pytest.raises(SpecConflict):
            other.delete_router(router.name)
        with pytest.raises(SpecConflict):
            other.delete_port_group(group.name)
    finally:
        other.close()
    assert port in nb.inventory().switch_ports
    assert router in nb.inventory().routers


def test_rows_made_by_hand_are_not_ours(ovn_central: OvnCentral) -> None:
    name = new_id()
    ovn_central.nbctl("ls-add", name)
    # Connected after the row exists: a replica that has not yet seen someone else's
    # brand-new row cannot know it (only our own writers take the creation counter).
    nb = Northbound(ovn_central.nb_remote, owner=f"test-{new_id()[:8]}", timeout=10)
    try:
        with pytest.raises(SpecConflict):
            nb.ensure_switch(SwitchSpec(name))
        with pytest.raises(SpecConflict):
            nb.delete_switch(name)
        assert nb.inventory().switches == ()
    finally:
        nb.close()
        ovn_central.nbctl("ls-del", name)


def test_concurrent_creators_of_one_switch_make_one_switch(ovn_central: OvnCentral) -> None:
    """Logical_Switch has no unique name: without the verified counter, racing creators
    would each insert one (they do, when the counter is disabled)."""
    owner = f"race-{new_id()[:8]}"
    writers = [Northbound(ovn_central.nb_remote, owner=owner, timeout=10) for _ in range(4)]
    names = [new_id() for _ in range(20)]
    start = threading.Barrier(len(writers), timeout=30)
    errors: list[BaseException] = []

    def create(nb: Northbound) -> None:
        try:
            for name in names:
                start.wait()  # every writer creates the same switch at the same moment
                nb.ensure_switch(SwitchSpec(name))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        listed = ovn_central.nbctl("--bare", "--columns=name", "list", "Logical_Switch").split()
        assert sorted(n for n in listed if n in names) == sorted(names)
    finally:
        for name in names:
            writers[0].delete_switch(name)
        for writer in writers:
            writer.close()


def test_nb_stopped_is_a_transient_error_within_the_timeout(
    private_central: OvnCentral,
) -> None:
    nb = Northbound(private_central.nb_remote, owner="fault", timeout=1)
    try:
        nb.ensure_switch(SwitchSpec("net-a"))
        private_central.stop_nb()
        started = time.monotonic()
        with pytest.raises(TransientError):
            nb.ensure_switch(SwitchSpec("net-b"))
        with pytest.raises(TransientError):
            nb.inventory()
        assert time.monotonic() - started < 2.5
        with pytest.raises(TransientError):
            Northbound(private_central.nb_remote, owner="fault", timeout=1)

        private_central.start_nb()  # same database file: the IDL reconnects by itself
        deadline = time.monotonic() + 15
        while True:
            try:
                nb.ensure_switch(SwitchSpec("net-b"))
                break
            except TransientError:
                assert time.monotonic() < deadline, "no reconnection after the NB came back"
        assert [s.name for s in nb.inventory().switches] == ["net-a", "net-b"]
    finally:
        nb.close()


def test_nb_that_never_answers_is_a_transient_error_not_a_hang(
    private_central: OvnCentral,
) -> None:
    """A stopped (SIGSTOP) server accepts connections and answers nothing."""
    nb = Northbound(private_central.nb_remote, owner="fault", timeout=1)
    try:
        private_central.freeze_nb()
        started = time.monotonic()
        with pytest.raises(TransientError):
            Northbound(private_central.nb_remote, owner="fault", timeout=1)
        with pytest.raises(TransientError):
            nb.ensure_switch(SwitchSpec("net-a"))
        with pytest.raises(TransientError):
            nb.ensure_switch(SwitchSpec("net-a"))  # the first one still waits in the queue
        assert time.monotonic() - started < 4
        private_central.thaw_nb()
        deadline = time.monotonic() + 15
        while True:
            try:
                nb.ensure_switch(SwitchSpec("net-a"))
                break
            except TransientError:
                assert time.monotonic() < deadline, "no recovery after the NB resumed"
        assert [s.name for s in nb.inventory().switches] == ["net-a"]
    finally:
        private_central.thaw_nb()
        nb.close()


def test_a_port_deleted_or_damaged_behind_our_back_shows_and_is_restored(
    nb: Northbound, ovn_central: OvnCentral
) -> None:
    net = a_network(nb)
    deleted, damaged = vif(net, 10), vif(net, 11)
    nb.ensure_switch_port(deleted)
    nb.ensure_switch_port(damaged)
    ovn_central.nbctl("lsp-del", deleted.name)
    ovn_central.nbctl("set", "Logical_Switch_Port", damaged.name, 'addresses="not-a-mac 10.0.0.9"')

    inventory = nb.inventory()
    assert inventory.switch_ports == ()
    assert inventory.unreadable == (damaged.name,)

    nb.ensure_switch_port(deleted)
    nb.ensure_switch_port(damaged)
    inventory = nb.inventory()
    assert set(inventory.switch_ports) == {deleted, damaged}
    assert inventory.unreadable == ()


def test_a_subnet_change_reaches_every_port_of_the_subnet(
    nb: Northbound, ovn_central: OvnCentral
) -> None:
    net = a_network(nb)
    first, second = vif(net, 10), vif(net, 11)
    nb.ensure_switch_port(first)
    nb.ensure_switch_port(second)
    new_dns = DhcpSpec("10.0.0.0/24", "10.0.0.1", "0a:00:00:00:00:01", ("198.51.100.54",))
    nb.ensure_switch_port(SwitchPortSpec(first.name, net, first.mac, first.ips, dhcp=new_dns))
    (dhcp,) = [r for r in nb_json(ovn_central, "list", "DHCP_Options") if net in str(r)]
    assert dict(dhcp["options"][1])["dns_server"] == "{198.51.100.54}"
    (row,) = nb_json(ovn_central, "list", "Logical_Switch_Port", second.name)
    assert row["dhcpv4_options"] == dhcp["_uuid"]


def _create_ports(remote: str, owner: str, switch: str, group: str, first: int) -> list[str]:
    """In a process of its own: 40 ports on one switch, all in one group."""
    nb = Northbound(remote, owner=owner, timeout=10)
    try:
        names = []
        for n in range(first, first + 40):
            spec = SwitchPortSpec(
                new_id(), switch, f"0a:00:00:00:{n // 256:02x}:{n % 256:02x}",
                (f"10.0.{n // 250}.{n % 250 + 2}",), port_groups=(group,),
            )  # fmt: skip
            nb.ensure_switch_port(spec)
            names.append(spec.name)
        return names
    finally:
        nb.close()


def test_writers_in_parallel_processes_lose_no_port(
    nb: Northbound, ovn_central: OvnCentral
) -> None:
    """Switch and group memberships are mutations: concurrent adds never overwrite."""
    net = a_network(nb)
    group = port_group_name(new_id())
    nb.ensure_port_group(PortGroupSpec(group))
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        batches = pool.starmap(
            _create_ports,
            [(ovn_central.nb_remote, nb.owner, net, group, i * 40) for i in range(4)],
        )
    created = {name for batch in batches for name in batch}
    assert len(created) == 160
    listed = re.findall(r"\((.+)\)", ovn_central.nbctl("lsp-list", net))
    assert set(listed) == created
    inventory = nb.inventory()
    assert {p.name for p in inventory.switch_ports} == created
    (state,) = inventory.port_groups
    assert set(state.ports) == created


def test_a_forked_child_opens_its_own_connection(nb: Northbound, ovn_central: OvnCentral) -> None:
    """Celery's prefork pool: an instance made in the parent works in the child."""
    net = a_network(nb)
    child = new_id()

    def run() -> None:
        nb.ensure_switch_port(SwitchPortSpec(child, net, "0a:00:00:00:03:01", ("10.0.0.30",)))

    process = multiprocessing.get_context("fork").Process(target=run)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert child in ovn_central.nbctl("lsp-list", net)
    nb.ensure_switch(SwitchSpec(net, (("tenant", "t1"),), mtu=1442))  # the parent still works


def test_a_tls_remote_works_with_the_installations_certificate() -> None:
    """Production's NB listens with TLS (issue 10, item 8); the client proves itself with a
    certificate of the installation's CA."""
    with OvnCentral(tls=True) as central:
        deadline = time.monotonic() + 5
        while True:  # the TLS listener comes up just after the unix socket
            try:
                nb = Northbound(central.nb_tls_remote, owner="tls", timeout=2, **central.tls_files)
                break
            except TransientError:
                assert time.monotonic() < deadline, "the TLS remote never answered"
                time.sleep(0.1)
        try:
            nb.ensure_switch(SwitchSpec("net-tls"))
            assert "net-tls" in central.nbctl("ls-list")
        finally:
            nb.close()
