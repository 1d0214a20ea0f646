"""Security group rules → OVN ACLs (a pure function), and the validation that keeps tenant
input out of match expressions unless it is what it claims to be."""

from __future__ import annotations

from typing import Any

import pytest

from hypervisor.ovn import (
    AclRuleSpec,
    AclSpec,
    DhcpSpec,
    InvalidSpec,
    NatSpec,
    PortGroupSpec,
    RouterPortSpec,
    SwitchPortSpec,
    SwitchSpec,
    acls_for,
    port_group_name,
)

G = "pg_0b1c2d3e_0000_4000_8000_000000000001"
BASE = {
    AclSpec("from-lport", 1001, f"inport == @{G} && ip", "drop"),
    AclSpec("to-lport", 1001, f"outport == @{G} && ip", "drop"),
    AclSpec(
        "from-lport", 1002, f"inport == @{G} && ip4 && udp.src == 68 && udp.dst == 67", "allow"
    ),
}


def rule_acl(**rule: Any) -> AclSpec:
    (acl,) = set(acls_for(G, [AclRuleSpec(**rule)])) - BASE
    return acl


def test_a_group_without_rules_drops_both_ways_but_lets_dhcp_requests_out() -> None:
    assert set(acls_for(G, ())) == BASE


def test_port_group_name_is_a_match_identifier() -> None:
    sg = "0b1c2d3e-0000-4000-8000-000000000001"
    assert port_group_name(sg) == G


@pytest.mark.parametrize(
    ("rule", "direction", "match"),
    [
        (
            {"direction": "ingress", "protocol": "tcp", "port_min": 22, "remote_cidr": "0.0.0.0/0"},
            "to-lport",
            f"outport == @{G} && ip4 && ip4.src == 0.0.0.0/0 && tcp && tcp.dst == 22",
        ),
        (
            {"direction": "egress"},
            "from-lport",
            f"inport == @{G} && ip4",
        ),
        (
            {"direction": "egress", "ethertype": "IPv6"},
            "from-lport",
            f"inport == @{G} && ip6",
        ),
        (
            {"direction": "ingress", "protocol": "udp", "port_min": 5000, "port_max": 5100},
            "to-lport",
            f"outport == @{G} && ip4 && udp && udp.dst >= 5000 && udp.dst <= 5100",
        ),
        (
            {"direction": "ingress", "remote_group": G},
            "to-lport",
            f"outport == @{G} && ip4 && ip4.src == ${G}_ip4",
        ),
        (
            {"direction": "egress", "ethertype": "IPv6", "remote_group": G},
            "from-lport",
            f"inport == @{G} && ip6 && ip6.dst == ${G}_ip6",
        ),
        (
            {"direction": "ingress", "protocol": "icmp", "port_min": 8, "port_max": 0},
            "to-lport",
            f"outport == @{G} && ip4 && icmp4 && icmp4.type == 8 && icmp4.code == 0",
        ),
        (
            {"direction": "ingress", "ethertype": "IPv6", "protocol": "icmp"},
            "to-lport",
            f"outport == @{G} && ip6 && icmp6",
        ),
        (
            {"direction": "ingress", "protocol": 47},
            "to-lport",
            f"outport == @{G} && ip4 && ip.proto == 47",
        ),
        (  # numbers that have names become the names (so that ports work on them)
            {"direction": "ingress", "protocol": "6", "port_min": 80},
            "to-lport",
            f"outport == @{G} && ip4 && tcp && tcp.dst == 80",
        ),
        (
            {"direction": "ingress", "ethertype": "IPv6", "protocol": 58},
            "to-lport",
            f"outport == @{G} && ip6 && icmp6",
        ),
        (  # a tenant's CIDR with host bits means its network
            {"direction": "ingress", "remote_cidr": "10.1.2.3/24"},
            "to-lport",
            f"outport == @{G} && ip4 && ip4.src == 10.1.2.0/24",
        ),
        (
            {"direction": "egress", "ethertype": "IPv6", "remote_cidr": "2001:DB8::/32"},
            "from-lport",
            f"inport == @{G} && ip6 && ip6.dst == 2001:db8::/32",
        ),
    ],
)
def test_rule_translation(rule: dict[str, Any], direction: str, match: str) -> None:
    assert rule_acl(**rule) == AclSpec(direction, 1002, match, "allow-related")


def test_rules_saying_the_same_thing_are_one_acl() -> None:
    rules = [
        AclRuleSpec("ingress", protocol="tcp", port_min=22),
        AclRuleSpec("ingress", protocol="TCP", port_min=22, port_max=22),
        AclRuleSpec("ingress", protocol=6, port_max=22),
    ]
    assert len(acls_for(G, rules)) == len(BASE) + 1


@pytest.mark.parametrize(
    "rule",
    [
        {"direction": "ingress", "remote_cidr": "0.0.0.0/0 || 1"},
        {"direction": "ingress", "remote_cidr": "10.0.0.0/24 && tcp"},
        {"direction": "ingress", "remote_cidr": "2001:db8::/32"},  # IPv6 on an IPv4 rule
        {"direction": "ingress", "remote_cidr": "10.0.0.0/33"},
        {"direction": "ingress", "protocol": "tcp", "port_min": "22 || 1"},
        {"direction": "ingress", "protocol": "tcp", "port_min": 70000},
        {"direction": "ingress", "protocol": "tcp", "port_min": 0},
        {"direction": "ingress", "protocol": "tcp", "port_min": True},
        {"direction": "ingress", "protocol": "tcp", "port_min": 22.5},
        {"direction": "ingress", "protocol": "tcp", "port_min": 90, "port_max": 80},
        {"direction": "ingress", "protocol": "tcp || 1"},
        {"direction": "ingress", "protocol": "gre"},
        {"direction": "ingress", "protocol": 256},
        {"direction": "ingress", "protocol": "-1"},
        {"direction": "ingress", "protocol": "٣"},  # a digit, but not an ASCII one
        {"direction": "ingress", "protocol": 47, "port_min": 1},  # ports need tcp/udp/icmp
        {"direction": "ingress", "protocol": "icmp", "port_max": 0},  # a code needs a type
        {"direction": "ingress", "remote_group": "pg_x || 1"},
        {"direction": "ingress", "remote_group": "pg-x"},
        {"direction": "ingress", "remote_group": G, "remote_cidr": "10.0.0.0/8"},
        {"direction": "sideways"},
        {"direction": "ingress", "ethertype": "IPX"},
    ],
)
def test_what_is_not_what_it_claims_is_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec):
        AclRuleSpec(**rule)


@pytest.mark.parametrize("group", ["pg-x", "pg_x && 1", "", "1pg", "@pg_x"])
def test_a_group_name_that_is_not_a_match_identifier_is_refused(group: str) -> None:
    with pytest.raises(InvalidSpec):
        acls_for(group, ())
    with pytest.raises(InvalidSpec):
        PortGroupSpec(group)


@pytest.mark.parametrize(
    "build",
    [
        lambda: SwitchSpec('x" || "y'),
        lambda: SwitchSpec("net", external_ids=(("andromede:owner", "someone"),)),
        lambda: SwitchSpec("net", mtu=10),
        lambda: SwitchPortSpec("p", "net", "0a:00:00:00:00:zz"),
        lambda: SwitchPortSpec("p", "net", "0a:00:00:00:00:01", ips=("10.0.0.300",)),
        lambda: SwitchPortSpec("p", "net", "0a:00:00:00:00:01", ips=("10.0.0.5 10.0.0.6",)),
        lambda: SwitchPortSpec("p", "net", "0a:00:00:00:00:01", type="vtep"),
        lambda: SwitchPortSpec("p", "net", "0a:00:00:00:00:01", type="router"),
        lambda: SwitchPortSpec(
            "p",
            "net",
            "0a:00:00:00:00:01",
            ips=("10.9.0.5",),
            dhcp=DhcpSpec("10.0.0.0/24", "10.0.0.1", "0a:00:00:00:00:fe"),
        ),
        lambda: DhcpSpec("10.0.0.0/24", "10.0.1.1", "0a:00:00:00:00:fe"),
        lambda: DhcpSpec("10.0.0.1/24", "10.0.0.1", "0a:00:00:00:00:fe"),
        lambda: DhcpSpec("10.0.0.0/24", None, "0a:00:00:00:00:fe"),
        lambda: DhcpSpec("10.0.0.0/24", "10.0.0.1", "0a:00:00:00:00:fe", ("dns.example",)),
        lambda: RouterPortSpec("lrp-x", "0a:00:00:00:00:01", ("10.0.0.1",) * 0),
        lambda: RouterPortSpec("lrp-x", "0a:00:00:00:00:01", ("10.0.0.1/24; rm",)),
        lambda: NatSpec("dnat", "203.0.113.5", "10.0.0.5"),
        lambda: NatSpec("snat", "203.0.113.5", "10.0.0.5/24"),
        lambda: NatSpec("dnat_and_snat", "203.0.113.5", "10.0.0.5", logical_port="p"),
    ],
)
def test_specs_refuse_values_that_are_not_what_their_field_means(build: Any) -> None:
    with pytest.raises(InvalidSpec):
        build()


def test_specs_are_normalised_so_that_read_back_compares_equal() -> None:
    port = SwitchPortSpec("p", "net", "0A:00:00:00:00:01", external_ids=(("b", "2"), ("a", "1")))
    assert port.mac == "0a:00:00:00:00:01"
    assert port.external_ids == (("a", "1"), ("b", "2"))
    assert NatSpec("snat", "203.0.113.5", "10.0.0.5/32").logical_ip == "10.0.0.5"
