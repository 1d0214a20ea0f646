"""The OVN specs of the database's network rows (DESIGN §7): what the northbound database
must hold for each network, port, security group and router. Read-only; the convergence
writes them (network.services.convergence)."""

from __future__ import annotations

import ipaddress

from django.conf import settings

from hypervisor.ovn.specs import (
    AclRuleSpec,
    DhcpSpec,
    NatSpec,
    PortGroupSpec,
    RouterPortSpec,
    RouterSpec,
    SwitchPortSpec,
    SwitchSpec,
    localnet_port,
    port_group_name,
    router_interface,
)
from network.models import FixedIP, FloatingIP, Network, Port, Router, SecurityGroup, Subnet

ROUTER_OWNERS = (Port.Owner.ROUTER_INTERFACE, Port.Owner.ROUTER_GATEWAY)


def switch_spec(network: Network) -> SwitchSpec:
    return SwitchSpec(
        name=str(network.pk),
        external_ids=(("tenant", str(network.tenant_id or "")),),
        mtu=network.mtu,
    )


def localnet_spec(network: Network) -> SwitchPortSpec | None:
    """An external network's tie to the hosts' provider bridge (`physical_network`)."""
    if not network.external or not network.physical_network:
        return None
    return localnet_port(f"ln-{network.pk}", str(network.pk), network.physical_network)


def dhcp_mac(subnet: Subnet) -> str:
    """The DHCP server's MAC for a subnet: locally administered, unicast, stable."""
    return "0a:" + ":".join(f"{b:02x}" for b in subnet.pk.bytes[:5])


def dhcp_spec(subnet: Subnet, network: Network) -> DhcpSpec | None:
    """OVN's DHCP answers for the subnet, from the IPAM (none without DHCP or a gateway)."""
    if not subnet.enable_dhcp or not subnet.gateway_ip:
        return None
    return DhcpSpec(
        cidr=subnet.cidr,
        router=subnet.gateway_ip,
        server_mac=dhcp_mac(subnet),
        dns_servers=tuple(subnet.dns_nameservers),
        mtu=network.mtu,
    )


def interface_address(fixed: FixedIP) -> str:
    """`address/prefix` of a fixed IP, as a router port holds it."""
    return f"{fixed.ip}/{ipaddress.ip_network(fixed.subnet.cidr).prefixlen}"


def _fixed_ips(port: Port) -> list[FixedIP]:
    return list(port.fixed_ips.select_related("subnet").order_by("pk"))


def router_legs(port: Port) -> tuple[RouterPortSpec, SwitchPortSpec] | None:
    """A router's interface or gateway port: its router port and its switch-side peer."""
    fixed = _fixed_ips(port)
    if not fixed:
        return None
    gateway = port.device_owner == Port.Owner.ROUTER_GATEWAY
    return router_interface(
        str(port.pk),
        str(port.network_id),
        port.mac,
        tuple(interface_address(f) for f in fixed),
        gateway_chassis=tuple(settings.OVN_GATEWAY_CHASSIS) if gateway else (),
    )


def port_spec(port: Port) -> SwitchPortSpec | None:
    """The switch port of a port (None for a floating IP's address holder: never in OVN)."""
    if port.device_owner == Port.Owner.FLOATING_IP:
        return None
    if port.device_owner in ROUTER_OWNERS:
        legs = router_legs(port)
        return legs[1] if legs is not None else None
    fixed = _fixed_ips(port)
    dhcp = dhcp_spec(fixed[0].subnet, port.network) if fixed else None
    return SwitchPortSpec(
        name=str(port.pk),
        switch=str(port.network_id),
        mac=port.mac,
        ips=tuple(f.ip for f in fixed),
        port_security=port.port_security_enabled,
        dhcp=dhcp,
        external_ids=(("device", str(port.device_id or "")),),
        port_groups=tuple(port_group_name(str(g.pk)) for g in port.security_groups.all()),
    )


def rule_specs(group: SecurityGroup) -> tuple[AclRuleSpec, ...]:
    return tuple(
        AclRuleSpec(
            direction=rule.direction,
            ethertype=rule.ethertype,
            protocol=rule.protocol or None,
            port_min=rule.port_range_min,
            port_max=rule.port_range_max,
            remote_cidr=rule.remote_ip_prefix or None,
            remote_group=port_group_name(str(rule.remote_group_id))
            if rule.remote_group_id
            else None,
        )
        for rule in group.rules.all().order_by("created_at")
    )


def group_spec(group: SecurityGroup, members: list[str]) -> PortGroupSpec:
    return PortGroupSpec(
        name=port_group_name(str(group.pk)),
        ports=tuple(members),
        rules=rule_specs(group),
        external_ids=(("tenant", str(group.tenant_id)),),
    )


def router_spec(router: Router) -> RouterSpec:
    """The router with its interfaces and gateway, SNAT for the subnets behind it, a
    default route to the external subnet's gateway, and its floating IPs."""
    ports: list[RouterPortSpec] = []
    nats: list[NatSpec] = []
    routes: list[tuple[str, str]] = []
    gateway_ip: str | None = None
    inside: list[str] = []
    for port in Port.objects.filter(device_id=router.pk, device_owner__in=ROUTER_OWNERS):
        legs = router_legs(port)
        if legs is None:
            continue
        ports.append(legs[0])
        fixed = _fixed_ips(port)
        if port.device_owner == Port.Owner.ROUTER_GATEWAY:
            gateway_ip = fixed[0].ip
            if fixed[0].subnet.gateway_ip:
                routes.append(("0.0.0.0/0", fixed[0].subnet.gateway_ip))
        else:
            inside.extend(f.subnet.cidr for f in fixed)
    if gateway_ip is not None:
        if router.enable_snat:
            nats.extend(NatSpec("snat", gateway_ip, cidr) for cidr in sorted(set(inside)))
        for floating in FloatingIP.objects.filter(router=router).exclude(fixed_ip=None):
            assert floating.fixed_ip is not None
            nats.append(NatSpec("dnat_and_snat", floating.address, floating.fixed_ip))
    return RouterSpec(
        name=str(router.pk),
        ports=tuple(ports),
        nats=tuple(nats),
        static_routes=tuple(routes),
        external_ids=(("tenant", str(router.tenant_id)),),
    )
