"""What a host needs to know of a port to wire a guest: the network on the host and the
guest's NIC, as the driver's specs (DESIGN §7). Read-only."""

from __future__ import annotations

import ipaddress

from hosts import naming
from hypervisor.base import NetworkSpec, NicSpec, StaticLease
from network.models import FixedIP, Port
from network.selectors import first_address


def _address(port: Port) -> FixedIP:
    fixed = first_address(port)
    if fixed is None:
        raise ValueError(f"port {port.pk} has no IPv4 address")
    return fixed


def address_cidr(port: Port) -> str:
    """The port's address with its prefix, as a guest configures it (198.51.100.5/27)."""
    fixed = _address(port)
    return f"{fixed.ip}/{ipaddress.ip_network(fixed.subnet.cidr).prefixlen}"


def gateway(port: Port) -> str | None:
    return _address(port).subnet.gateway_ip


def network_spec(port: Port) -> NetworkSpec:
    """The tenant's network as an isolated libvirt network on a host, with this port's
    static DHCP lease (the placeholder realisation until guests sit on OVN)."""
    fixed = _address(port)
    subnet = fixed.subnet
    prefix = ipaddress.ip_network(subnet.cidr).prefixlen
    owner = port.network.tenant_id or port.network_id
    return NetworkSpec(
        name=naming.tenant_network(owner),
        bridge=naming.tenant_bridge(owner),
        gateway_cidr=f"{subnet.gateway_ip}/{prefix}",
        # DHCP host names must be unique per network; tenant-chosen names need not be.
        leases=(StaticLease(mac=port.mac, ip=fixed.ip, hostname=f"i-{port.device_id.hex}"),)
        if port.device_id
        else (),
    )


def nic_spec(port: Port) -> NicSpec:
    owner = port.network.tenant_id or port.network_id
    return NicSpec(network=naming.tenant_network(owner), mac=port.mac)
