"""What a host needs to know of a port to wire a guest: the tenant network on the host and
the guest's NIC, as the driver's specs (DESIGN §7). Read-only."""

from __future__ import annotations

from hosts import naming
from hypervisor.base import NetworkSpec, NicSpec, StaticLease
from network.models import Port
from network.services.ipam import gateway


def prefix_length(port: Port) -> str:
    return port.network.cidr.split("/")[1]


def address_cidr(port: Port) -> str:
    """The port's address with its prefix, as a guest configures it (198.51.100.5/27)."""
    return f"{port.ip}/{prefix_length(port)}"


def network_spec(port: Port) -> NetworkSpec:
    """The tenant's isolated network on a host, with this port's static DHCP lease."""
    network = port.network
    return NetworkSpec(
        name=naming.tenant_network(network.tenant_id),
        bridge=naming.tenant_bridge(network.tenant_id),
        gateway_cidr=f"{gateway(network)}/{prefix_length(port)}",
        # DHCP host names must be unique per network; tenant-chosen names need not be.
        leases=(StaticLease(mac=port.mac, ip=port.ip, hostname=f"i-{port.device_id.hex}"),),
    )


def nic_spec(port: Port) -> NicSpec:
    return NicSpec(network=naming.tenant_network(port.network.tenant_id), mac=port.mac)
