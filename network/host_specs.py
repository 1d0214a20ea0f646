"""What a host needs to know of a device's ports to wire a guest (DESIGN §7), as the
driver's specs and the guest's network configuration. Read-only.

Two realisations: OVN (settings.OVN_NB_REMOTE set): each port is an OVN logical switch port
that a control worker writes, and the guest's NIC joins the host's integration bridge under
the port's id; without OVN (development on libvirt's fake, and the legacy hypervisor lane):
a tenant's network is an isolated libvirt network with a static DHCP lease per port.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.conf import settings

from hosts import naming
from hosts.models import Host
from hypervisor.base import NetworkSpec, NicSpec, StaticLease
from network.models import FixedIP, Port
from network.models.status import Realisation
from network.selectors import first_address


def ovn_enabled() -> bool:
    return bool(settings.OVN_NB_REMOTE)


@dataclass(frozen=True)
class GuestInterface:
    """One NIC as the guest configures it (cloud-init network-config)."""

    mac: str
    address_cidr: str | None  # 198.51.100.5/24; None: no IPv4 address
    gateway: str | None  # the default route (first NIC only)
    mtu: int | None
    nameservers: tuple[str, ...] = ()


def _address(port: Port) -> FixedIP:
    fixed = first_address(port)
    if fixed is None:
        raise ValueError(f"port {port.pk} has no IPv4 address")
    return fixed


def address_cidr(port: Port) -> str:
    """The port's address with its prefix, as a guest configures it (198.51.100.5/27)."""
    fixed = _address(port)
    return f"{fixed.ip}/{ipaddress.ip_network(fixed.subnet.cidr).prefixlen}"


def guest_interfaces(ports: list[Port]) -> tuple[GuestInterface, ...]:
    """The guest's NICs in order; the first one with a gateway carries the default route."""
    interfaces = []
    routed = False
    for port in ports:
        fixed = first_address(port)
        gateway = fixed.subnet.gateway_ip if fixed is not None else None
        interfaces.append(
            GuestInterface(
                mac=port.mac,
                address_cidr=address_cidr(port) if fixed is not None else None,
                gateway=gateway if gateway and not routed else None,
                mtu=port.network.mtu if ovn_enabled() else None,
                nameservers=tuple(fixed.subnet.dns_nameservers) if fixed is not None else (),
            )
        )
        routed = routed or bool(gateway)
    return tuple(interfaces)


def network_spec(port: Port) -> NetworkSpec:
    """Without OVN: the network as an isolated libvirt network on a host, with this port's
    static DHCP lease. Its gateway lives in the host's namespace, so such networks may not
    overlap on one host: the legacy mode's limit (docs/decisions.md)."""
    fixed = _address(port)
    subnet = fixed.subnet
    prefix = ipaddress.ip_network(subnet.cidr).prefixlen
    # One libvirt network per network, named after the network's id.
    return NetworkSpec(
        name=naming.tenant_network(port.network_id),
        bridge=naming.tenant_bridge(port.network_id),
        gateway_cidr=f"{subnet.gateway_ip}/{prefix}",
        # DHCP host names must be unique per network (one device may have two ports on it);
        # tenant-chosen names need not be.
        leases=(StaticLease(mac=port.mac, ip=fixed.ip, hostname=f"p-{port.pk.hex}"),),
    )


def nic_spec(port: Port, host: Host) -> NicSpec:
    """The guest's NIC for `port` on `host`: on the host's integration bridge as the OVN
    port (checksum offload off on the userspace datapath), or without OVN on the tenant's
    libvirt network."""
    if ovn_enabled():
        return NicSpec.on_ovs(
            bridge=host.ovs_bridge,
            interface_id=str(port.pk),
            mac=port.mac,
            mtu=port.network.mtu,
            csum_off=host.ovs_datapath == Host.Datapath.NETDEV,
        )
    return NicSpec(network=naming.tenant_network(port.network_id), mac=port.mac)


def realisation(ports: list[Port]) -> tuple[bool, str]:
    """(every port is in OVN, the first fault of a port that could not be written)."""
    statuses = dict(
        Port.objects.filter(pk__in=[p.pk for p in ports]).values_list("status", "fault")
    )
    done = set(statuses) <= {Realisation.ACTIVE}
    return done, statuses.get(Realisation.ERROR, "")
