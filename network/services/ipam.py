"""Addresses on the default per-tenant network (until real tenant networks exist).

Each tenant gets one /27 from settings.TENANT_NETWORK_SUPERNETS (by default the documentation
ranges 198.51.100.0/24 and 203.0.113.0/24: 16 tenants per installation, enough for
development and tests, and traffic that can never leave the machine; the real-hypervisor
tests take 192.0.2.0/24, so that they never meet the networks of `make run` on the same
libvirtd). .1 is the host's bridge; instances get .2 to .30, handed out in rotation.
Unique constraints on the subnet, the address and the MAC make concurrent allocations safe; a
lost race retries.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction

from iaas.errors import ConflictError
from network.models import Port, TenantNetwork
from tenants.models import Tenant

PREFIX = 27
RETRIES = 8


def _subnets() -> list[str]:
    return [
        str(subnet)
        for supernet in settings.TENANT_NETWORK_SUPERNETS
        for subnet in ipaddress.ip_network(supernet).subnets(new_prefix=PREFIX)
    ]


def tenant_network(tenant: Tenant) -> TenantNetwork:
    """The tenant's network, allocated on first use."""
    existing = TenantNetwork.objects.filter(tenant=tenant).first()
    if existing is not None:
        return existing
    for _ in range(RETRIES):
        taken = set(TenantNetwork.objects.values_list("cidr", flat=True))
        free = [cidr for cidr in _subnets() if cidr not in taken]
        if not free:
            raise ConflictError(
                "No subnet left for a new tenant network.", code="no_network_available"
            )
        try:
            with transaction.atomic():
                return TenantNetwork.objects.create(tenant=tenant, cidr=free[0])
        except IntegrityError:
            mine = TenantNetwork.objects.filter(tenant=tenant).first()
            if mine is not None:
                return mine
    raise ConflictError("Could not allocate a tenant network; retry.", code="ipam_contention")


def gateway(network: TenantNetwork) -> str:
    return str(next(ipaddress.ip_network(network.cidr).hosts()))


def _random_mac() -> str:
    return "52:54:00:" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(3))


def allocate_port(*, network: TenantNetwork, device_id: uuid.UUID) -> Port:
    """A free address of the network, searching from where the last search stopped (so
    freed addresses rest before reuse), and a random MAC, bound to device `device_id`."""
    hosts = list(ipaddress.ip_network(network.cidr).hosts())[1:]  # .1 is the gateway
    for _ in range(RETRIES):
        taken = set(Port.objects.filter(network=network).values_list("ip", flat=True))
        start = network.next_host_index % len(hosts)
        rotated = hosts[start:] + hosts[:start]
        free = [str(ip) for ip in rotated if str(ip) not in taken]
        if not free:
            raise ConflictError(f"No address left in {network.cidr}.", code="no_address_available")
        try:
            with transaction.atomic():
                port = Port.objects.create(
                    network=network, device_id=device_id, mac=_random_mac(), ip=free[0]
                )
        except IntegrityError:
            continue
        index = hosts.index(ipaddress.ip_address(free[0]))
        network.next_host_index = index + 1
        TenantNetwork.objects.filter(pk=network.pk).update(next_host_index=index + 1)
        return port
    raise ConflictError("Could not allocate an address; retry.", code="ipam_contention")


def release_ports(device_id: uuid.UUID) -> None:
    """Free every address bound to the device (it is gone)."""
    Port.objects.filter(device_id=device_id).delete()
