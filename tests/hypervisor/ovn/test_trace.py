"""What the rows we write make OVN do, read from ovn-northd's logical flows with `ovn-trace`
(a packet simulated through the southbound pipeline: no chassis needed, so it runs in the
fast lane). These are the measurements behind acls.py's docstring: a port whose security
group has no rule still gets its DHCP lease and answers ARP; our rules open and close what
they say; port security drops a guest that changes its IP or MAC."""

from __future__ import annotations

import subprocess

from hypervisor.ovn import (
    AclRuleSpec,
    DhcpSpec,
    NatSpec,
    Northbound,
    PortGroupSpec,
    RouterSpec,
    SwitchPortSpec,
    SwitchSpec,
    localnet_port,
    port_group_name,
    router_interface,
)
from tests.hypervisor.ovn.conftest import new_id
from tests.support.ovn_central import OvnCentral

DHCP = DhcpSpec("10.0.0.0/24", "10.0.0.1", "0a:00:00:00:00:01", ("198.51.100.53",), mtu=1442)
MAC_A, MAC_B = "0a:00:00:00:01:0a", "0a:00:00:00:01:0b"


def trace(central: OvnCentral, datapath: str, flow: str) -> str:
    """ovn-trace's minimal output: the actions taken, `output(…)` when delivered."""
    return subprocess.run(
        ["ovn-trace", f"--db={central.sb_remote}", "--minimal", datapath, flow],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout


def delivered(output: str) -> bool:
    return "output(" in output


class Net:
    """Two ports on one network; `a` in a security group."""

    def __init__(self, nb: Northbound) -> None:
        self.switch = new_id()
        nb.ensure_switch(SwitchSpec(self.switch))
        self.group = port_group_name(new_id())
        nb.ensure_port_group(PortGroupSpec(self.group))
        self.a = SwitchPortSpec(
            new_id(), self.switch, MAC_A, ("10.0.0.10",), dhcp=DHCP, port_groups=(self.group,)
        )
        self.b = SwitchPortSpec(new_id(), self.switch, MAC_B, ("10.0.0.11",), dhcp=DHCP)
        nb.ensure_switch_port(self.a)
        nb.ensure_switch_port(self.b)
        nb.wait_sb()

    def tcp_b_to_a(self, port: int) -> str:
        return (
            f'inport == "{self.b.name}" && eth.src == {MAC_B} && eth.dst == {MAC_A} && '
            f"ip4.src == 10.0.0.11 && ip4.dst == 10.0.0.10 && ip.ttl == 64 && tcp.dst == {port}"
        )


def test_a_port_whose_group_has_no_rule_gets_its_lease_and_answers_arp(
    nb_northd: Northbound, ovn_central_northd: OvnCentral
) -> None:
    net = Net(nb_northd)
    discover = (
        f'inport == "{net.a.name}" && eth.src == {MAC_A} && eth.dst == ff:ff:ff:ff:ff:ff && '
        "ip4.src == 0.0.0.0 && ip4.dst == 255.255.255.255 && udp.src == 68 && udp.dst == 67"
    )
    out = trace(ovn_central_northd, net.switch, discover)
    assert "put_dhcp_opts(offerip = 10.0.0.10" in out
    assert "router = 10.0.0.1" in out
    assert "mtu = 1442" in out
    assert delivered(out)  # the offer reaches the port, through the to-lport drop
    arp = (
        f'inport == "{net.b.name}" && eth.src == {MAC_B} && eth.dst == ff:ff:ff:ff:ff:ff && '
        f"arp.op == 1 && arp.sha == {MAC_B} && arp.spa == 10.0.0.11 && arp.tpa == 10.0.0.10"
    )
    assert f"arp.sha = {MAC_A}" in trace(ovn_central_northd, net.switch, arp)
    assert not delivered(trace(ovn_central_northd, net.switch, net.tcp_b_to_a(22)))


def test_a_rule_opens_its_port_and_removing_it_shuts_it_again(
    nb_northd: Northbound, ovn_central_northd: OvnCentral
) -> None:
    net = Net(nb_northd)
    ssh = AclRuleSpec("ingress", protocol="tcp", port_min=22, remote_cidr="10.0.0.0/24")
    nb_northd.ensure_port_group(PortGroupSpec(net.group, (net.a.name,), (ssh,)))
    nb_northd.wait_sb()
    assert delivered(trace(ovn_central_northd, net.switch, net.tcp_b_to_a(22)))
    assert not delivered(trace(ovn_central_northd, net.switch, net.tcp_b_to_a(80)))

    nb_northd.ensure_port_group(PortGroupSpec(net.group, (net.a.name,), ()))
    nb_northd.wait_sb()
    assert not delivered(trace(ovn_central_northd, net.switch, net.tcp_b_to_a(22)))


def test_a_guest_that_changes_its_ip_or_mac_reaches_nobody(
    nb_northd: Northbound, ovn_central_northd: OvnCentral
) -> None:
    net = Net(nb_northd)
    own = (
        f'inport == "{net.b.name}" && eth.src == {MAC_B} && eth.dst == {MAC_A} && '
        "ip4.src == 10.0.0.11 && ip4.dst == 10.0.0.10 && ip.ttl == 64 && icmp4"
    )
    nb_northd.ensure_port_group(
        PortGroupSpec(net.group, (net.a.name,), (AclRuleSpec("ingress", protocol="icmp"),))
    )
    nb_northd.wait_sb()
    assert delivered(trace(ovn_central_northd, net.switch, own))
    other_ip = own.replace("ip4.src == 10.0.0.11", "ip4.src == 10.0.0.99")
    assert not delivered(trace(ovn_central_northd, net.switch, other_ip))
    other_mac = own.replace(f"eth.src == {MAC_B}", "eth.src == 0a:00:00:00:01:99")
    assert not delivered(trace(ovn_central_northd, net.switch, other_mac))


def test_a_router_with_snat_and_a_floating_ip_reaches_the_southbound(
    nb_northd: Northbound, ovn_central_northd: OvnCentral
) -> None:
    net, public = new_id(), new_id()
    nb_northd.ensure_switch(SwitchSpec(net))
    nb_northd.ensure_switch(SwitchSpec(public))
    nb_northd.ensure_switch_port(localnet_port(new_id(), public, "physnet1"))
    inside, inside_peer = router_interface(new_id(), net, "0a:00:00:00:00:01", ("10.0.0.1/24",))
    outside, outside_peer = router_interface(
        new_id(), public, "0a:00:00:00:02:01", ("203.0.113.10/24",), gateway_chassis=("ch1",)
    )
    nb_northd.ensure_switch_port(inside_peer)
    nb_northd.ensure_switch_port(outside_peer)
    router = new_id()
    nb_northd.ensure_router(
        RouterSpec(
            router,
            ports=(inside, outside),
            nats=(
                NatSpec("snat", "203.0.113.10", "10.0.0.0/24"),
                NatSpec("dnat_and_snat", "203.0.113.22", "10.0.0.10"),
            ),
            static_routes=(("0.0.0.0/0", "203.0.113.1"),),
        )
    )
    nb_northd.wait_sb()
    datapaths = ovn_central_northd.sbctl(
        "--bare", "--columns=external_ids", "list", "Datapath_Binding"
    )
    for name in (net, public, router):
        assert name in datapaths
    flows = ovn_central_northd.sbctl("lflow-list", router)
    assert "ct_snat_in_czone(203.0.113.10)" in flows  # SNAT of the subnet
    assert "ct_dnat_in_czone(10.0.0.10)" in flows
    assert "ct_snat_in_czone(203.0.113.22)" in flows  # the floating IP, both ways
    ports = ovn_central_northd.sbctl(
        "--bare", "--columns=logical_port,type", "list", "Port_Binding"
    )
    assert "localnet" in ports
    assert f"cr-{outside.name}" in ports  # the gateway port's chassis-resident twin
