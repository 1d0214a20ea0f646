"""The convergence path (DESIGN §7) against a real NB `ovsdb-server`: what a tenant asks of
the API reaches OVN's northbound database once the control worker has run what the request
queued (tests/network/queued.py: the real Celery tasks, run eagerly), and the NB is read
back with OVN's own `ovn-nbctl` (tests/network/nb_view.py)."""

from __future__ import annotations

import pytest

from hypervisor.ovn import port_group_name
from network.models import SecurityGroup
from network.services import realise
from tests.network import nb_view
from tests.network.queued import converge
from tests.network.test_networks_api import make_network

pytestmark = pytest.mark.django_db


def drops_and_dhcp(pg: str) -> set[tuple[str, int, str, str]]:
    """The ACLs every security group has, whatever its rules."""
    return {
        ("from-lport", 1001, f"inport == @{pg} && ip", "drop"),
        ("to-lport", 1001, f"outport == @{pg} && ip", "drop"),
        ("from-lport", 1002, f"inport == @{pg} && ip4 && udp.src == 68 && udp.dst == 67", "allow"),
    }


def default_rules(pg: str) -> set[tuple[str, int, str, str]]:
    """The default group's: ingress from its own members, all egress."""
    return {
        ("to-lport", 1002, f"outport == @{pg} && ip4 && ip4.src == ${pg}_ip4", "allow-related"),
        ("from-lport", 1002, f"inport == @{pg} && ip4", "allow-related"),
    }


def network_with_subnet(client, **subnet):
    (network, made), _ = converge(lambda: make_network(client, **subnet))
    return network, made


def port_on(client, network_id, **body):
    created, sent = converge(
        lambda: client.post("/api/v1/ports", {"network": network_id, **body}, format="json")
    )
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "building"
    return created.json(), sent


def test_a_port_reaches_ovn_with_addresses_port_security_dhcp_and_its_default_group(net, ovn):
    with_dns = {"dns_nameservers": ["198.51.100.53", "198.51.100.54"]}
    network, _ = network_with_subnet(net.client, **with_dns)
    port, sent = port_on(net.client, network["id"])
    group = SecurityGroup.objects.get(tenant=net.acme, is_default=True)
    assert sent == [
        (realise.SECURITY_GROUP, (str(group.pk),)),  # made with the tenant's first port
        (realise.PORT, (port["id"],)),
    ]

    central = ovn.central
    assert nb_view.port_names(central, network["id"]) == {port["id"]}
    row = nb_view.one(central, "Logical_Switch_Port", port["id"])
    assert row is not None
    ip = port["fixed_ips"][0]["ip_address"]
    assert ip == "198.51.100.2"
    assert row["addresses"] == f"{port['mac_address']} {ip}"
    assert row["port_security"] == f"{port['mac_address']} {ip}"  # no spoofing
    dhcp = nb_view.dhcp_options(central, port["id"])
    assert dhcp is not None
    assert dhcp["cidr"] == "198.51.100.0/24"
    assert dhcp["options"]["router"] == "198.51.100.1"
    assert dhcp["options"]["dns_server"] == "{198.51.100.53, 198.51.100.54}"
    assert dhcp["options"]["mtu"] == "1442"
    pg = port_group_name(str(group.pk))
    assert nb_view.members(central, pg) == {port["id"]}
    assert nb_view.acls(central, pg) == drops_and_dhcp(pg) | default_rules(pg)

    # building → active, as the tenant sees it.
    assert net.client.get(f"/api/v1/ports/{port['id']}").json()["status"] == "active"
    assert net.client.get(f"/api/v1/networks/{network['id']}").json()["status"] == "active"


def test_a_rule_added_then_deleted_reaches_the_groups_acls(net, ovn):
    network, _ = network_with_subnet(net.client)
    port, _ = port_on(net.client, network["id"])
    group = port["security_groups"][0]
    pg = port_group_name(group)
    ssh = ("to-lport", 1002, f"outport == @{pg} && ip4 && ip4.src == 192.0.2.0/24 && tcp "
           "&& tcp.dst == 22", "allow-related")  # fmt: skip

    rule, sent = converge(
        lambda: net.client.post(
            "/api/v1/security-group-rules",
            {
                "security_group": group,
                "direction": "ingress",
                "protocol": "tcp",
                "port_range_min": 22,
                "port_range_max": 22,
                "remote_ip_prefix": "192.0.2.0/24",
            },
            format="json",
        )
    )
    assert rule.status_code == 201, rule.json()
    assert sent == [(realise.SECURITY_GROUP, (group,))]
    assert nb_view.acls(ovn.central, pg) == drops_and_dhcp(pg) | default_rules(pg) | {ssh}
    assert nb_view.members(ovn.central, pg) == {port["id"]}

    deleted, _ = converge(
        lambda: net.client.delete(f"/api/v1/security-group-rules/{rule.json()['id']}")
    )
    assert deleted.status_code == 204
    assert nb_view.acls(ovn.central, pg) == drops_and_dhcp(pg) | default_rules(pg)
    assert nb_view.members(ovn.central, pg) == {port["id"]}


def test_a_router_with_an_interface_and_a_gateway_gets_snat_and_a_default_route(net, ovn, external):
    network, subnet = network_with_subnet(net.client)
    router, _ = converge(
        lambda: net.client.post(
            "/api/v1/routers",
            {"name": "r1", "external_network": str(external.pk)},
            format="json",
        )
    )
    assert router.status_code == 201, router.json()
    router_id = router.json()["id"]
    added, _ = converge(
        lambda: net.client.post(
            f"/api/v1/routers/{router_id}/add-interface", {"subnet": subnet["id"]}, format="json"
        )
    )
    assert added.status_code == 200, added.json()
    shown = net.client.get(f"/api/v1/routers/{router_id}").json()
    inside = shown["interfaces"][0]["port"]
    gateway = shown["external_gateway"]["port"]
    snat_ip = shown["external_gateway"]["fixed_ips"][0]["ip_address"]
    assert snat_ip == "203.0.113.130"

    central = ovn.central
    legs = nb_view.router_ports(central, router_id)
    assert {name: (leg["networks"], leg["chassis"]) for name, leg in legs.items()} == {
        f"lrp-{inside}": (["198.51.100.1/24"], []),
        f"lrp-{gateway}": (["203.0.113.130/25"], ["chassis-x"]),
    }
    assert nb_view.router_nats(central, router_id) == {("snat", snat_ip, "198.51.100.0/24")}
    assert nb_view.router_routes(central, router_id) == {("0.0.0.0/0", "203.0.113.129")}
    # Each leg's switch-side peer, and the provider network's tie to the hosts' bridge.
    assert nb_view.port_names(central, network["id"]) == {inside}
    assert nb_view.port_names(central, str(external.pk)) == {gateway, f"ln-{external.pk}"}
    peer = nb_view.one(central, "Logical_Switch_Port", inside)
    assert peer is not None
    assert (peer["type"], peer["options"]) == ("router", {"router-port": f"lrp-{inside}"})
    # The gateway's peer announces the router's NAT addresses (gratuitous ARPs upstream).
    gateway_peer = nb_view.one(central, "Logical_Switch_Port", gateway)
    assert gateway_peer is not None
    assert gateway_peer["options"] == {"router-port": f"lrp-{gateway}", "nat-addresses": "router"}
    localnet = nb_view.one(central, "Logical_Switch_Port", f"ln-{external.pk}")
    assert localnet is not None
    assert (localnet["type"], localnet["options"]) == ("localnet", {"network_name": "physnet1"})
    assert shown["status"] == "active"


def router_between(client, subnet_id, external):
    router, _ = converge(
        lambda: client.post(
            "/api/v1/routers",
            {"name": "r1", "external_network": str(external.pk)},
            format="json",
        )
    )
    router_id = router.json()["id"]
    converge(
        lambda: client.post(
            f"/api/v1/routers/{router_id}/add-interface", {"subnet": subnet_id}, format="json"
        )
    )
    return router_id


def test_a_floating_ip_associated_is_a_dnat_and_snat_and_disassociated_is_gone(net, ovn, external):
    network, subnet = network_with_subnet(net.client)
    port, _ = port_on(net.client, network["id"])
    router_id = router_between(net.client, subnet["id"], external)
    ip = port["fixed_ips"][0]["ip_address"]

    floating, sent = converge(
        lambda: net.client.post(
            "/api/v1/floating-ips",
            {"network": str(external.pk), "port": port["id"]},
            format="json",
        )
    )
    assert floating.status_code == 201, floating.json()
    assert sent == [(realise.ROUTER, (router_id,))]
    address = floating.json()["address"]
    snat = ("snat", "203.0.113.130", "198.51.100.0/24")
    assert nb_view.router_nats(ovn.central, router_id) == {
        snat, ("dnat_and_snat", address, ip)
    }  # fmt: skip
    url = f"/api/v1/floating-ips/{floating.json()['id']}"
    assert net.client.get(url).json()["status"] == "active"
    # The address holder keeps the address in the IPAM only: no port of it in OVN.
    assert nb_view.port_names(ovn.central, str(external.pk)) == {
        net.client.get(f"/api/v1/routers/{router_id}").json()["external_gateway"]["port"],
        f"ln-{external.pk}",
    }

    cleared, _ = converge(lambda: net.client.patch(url, {"port": None}, format="json"))
    assert cleared.status_code == 200, cleared.json()
    assert nb_view.router_nats(ovn.central, router_id) == {snat}
    assert net.client.get(url).json()["status"] == "active"


def test_a_deleted_port_leaves_its_switch_and_groups_and_a_deleted_network_its_switch(net, ovn):
    network, _ = network_with_subnet(net.client)
    kept, _ = port_on(net.client, network["id"])
    gone, _ = port_on(net.client, network["id"])
    pg = port_group_name(gone["security_groups"][0])
    assert nb_view.members(ovn.central, pg) == {kept["id"], gone["id"]}

    deleted, sent = converge(lambda: net.client.delete(f"/api/v1/ports/{gone['id']}"))
    assert deleted.status_code == 204
    assert sent == [(realise.DELETE_PORT, (gone["id"],))]
    assert nb_view.one(ovn.central, "Logical_Switch_Port", gone["id"]) is None
    assert nb_view.port_names(ovn.central, network["id"]) == {kept["id"]}
    assert nb_view.members(ovn.central, pg) == {kept["id"]}

    converge(lambda: net.client.delete(f"/api/v1/ports/{kept['id']}"))
    dhcp = nb_view.rows(ovn.central, "DHCP_Options", ovn.owner)
    assert dhcp == []  # no port of the switch uses its subnet's options any more
    deleted, sent = converge(lambda: net.client.delete(f"/api/v1/networks/{network['id']}"))
    assert deleted.status_code == 204
    assert sent == [(realise.DELETE_NETWORK, (network["id"],))]
    assert nb_view.one(ovn.central, "Logical_Switch", network["id"]) is None
    assert nb_view.members(ovn.central, pg) == set()


def test_two_tenants_with_the_same_cidr_get_two_switches(net, ovn):
    mine, _ = network_with_subnet(net.client)
    theirs, _ = network_with_subnet(net.other)
    my_port, _ = port_on(net.client, mine["id"])
    their_port, _ = port_on(net.other, theirs["id"])
    assert my_port["fixed_ips"][0]["ip_address"] == their_port["fixed_ips"][0]["ip_address"]

    switches = nb_view.by_name(ovn.central, "Logical_Switch", ovn.owner)
    assert set(switches) == {mine["id"], theirs["id"]}
    assert switches[mine["id"]]["external_ids"]["tenant"] == str(net.acme.pk)
    assert switches[theirs["id"]]["external_ids"]["tenant"] == str(net.globex.pk)
    assert nb_view.port_names(ovn.central, mine["id"]) == {my_port["id"]}
    assert nb_view.port_names(ovn.central, theirs["id"]) == {their_port["id"]}
    # Each in its own tenant's default group.
    assert my_port["security_groups"] != their_port["security_groups"]
    for port in (my_port, their_port):
        pg = port_group_name(port["security_groups"][0])
        assert nb_view.members(ovn.central, pg) == {port["id"]}


def test_a_port_moved_to_another_group_leaves_the_first_and_without_port_security_all(net, ovn):
    network, _ = network_with_subnet(net.client)
    port, _ = port_on(net.client, network["id"])
    default = port_group_name(port["security_groups"][0])
    web, _ = converge(
        lambda: net.client.post("/api/v1/security-groups", {"name": "web"}, format="json")
    )
    assert web.status_code == 201, web.json()
    web_pg = port_group_name(web.json()["id"])
    url = f"/api/v1/ports/{port['id']}"

    moved, _ = converge(
        lambda: net.client.patch(url, {"security_groups": [web.json()["id"]]}, format="json")
    )
    assert moved.status_code == 200, moved.json()
    assert nb_view.members(ovn.central, web_pg) == {port["id"]}
    assert nb_view.members(ovn.central, default) == set()
    egress_only = {("from-lport", 1002, f"inport == @{web_pg} && ip4", "allow-related")}
    assert nb_view.acls(ovn.central, web_pg) == drops_and_dhcp(web_pg) | egress_only

    opened, _ = converge(
        lambda: net.client.patch(url, {"port_security_enabled": False}, format="json")
    )
    assert opened.status_code == 200, opened.json()
    row = nb_view.one(ovn.central, "Logical_Switch_Port", port["id"])
    assert row is not None
    assert row["port_security"] == []
    assert nb_view.members(ovn.central, web_pg) == set()
    assert net.client.get(url).json()["status"] == "active"


def test_a_subnets_new_dns_servers_reach_its_dhcp_options(net, ovn):
    network, subnet = network_with_subnet(net.client, dns_nameservers=["198.51.100.53"])
    port, _ = port_on(net.client, network["id"])
    dhcp = nb_view.dhcp_options(ovn.central, port["id"])
    assert dhcp is not None
    assert dhcp["options"]["dns_server"] == "{198.51.100.53}"

    changed, sent = converge(
        lambda: net.client.patch(
            f"/api/v1/subnets/{subnet['id']}",
            {"dns_nameservers": ["192.0.2.53"]},
            format="json",
        )
    )
    assert changed.status_code == 200, changed.json()
    assert sent == [(realise.NETWORK, (network["id"],))]
    dhcp = nb_view.dhcp_options(ovn.central, port["id"])
    assert dhcp is not None
    assert dhcp["options"]["dns_server"] == "{192.0.2.53}"
    assert len(nb_view.rows(ovn.central, "DHCP_Options", ovn.owner)) == 1


def test_an_interface_removed_and_a_router_deleted_leave_ovn(net, ovn, external):
    network, subnet = network_with_subnet(net.client)
    router_id = router_between(net.client, subnet["id"], external)
    shown = net.client.get(f"/api/v1/routers/{router_id}").json()
    inside, gateway = shown["interfaces"][0]["port"], shown["external_gateway"]["port"]
    assert nb_view.port_names(ovn.central, network["id"]) == {inside}

    removed, _ = converge(
        lambda: net.client.post(
            f"/api/v1/routers/{router_id}/remove-interface",
            {"subnet": subnet["id"]},
            format="json",
        )
    )
    assert removed.status_code == 200, removed.json()
    assert set(nb_view.router_ports(ovn.central, router_id)) == {f"lrp-{gateway}"}
    assert nb_view.router_nats(ovn.central, router_id) == set()  # nothing behind it to SNAT
    assert nb_view.port_names(ovn.central, network["id"]) == set()

    deleted, _ = converge(lambda: net.client.delete(f"/api/v1/routers/{router_id}"))
    assert deleted.status_code == 204
    assert nb_view.one(ovn.central, "Logical_Router", router_id) is None
    assert nb_view.port_names(ovn.central, str(external.pk)) == {f"ln-{external.pk}"}
