"""Addresses (IPAM): the control plane's database is the source of truth (DESIGN §7).

An address is unique per subnet by constraint (`fixedip_unique_address`). Allocation locks
the subnet's row, so concurrent allocations in one subnet are decided one after the other
(and the constraint stays the backstop); exhaustion is a `409 no_address_available`.
Automatic allocation searches the pools from where the previous search stopped (the
subnet's `next_index`), so a freed address rests until every other one was handed out.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError, transaction

from iaas.errors import ConflictError, InvalidRequest
from network.models import FixedIP, Port, Subnet

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: MACs of our ports: QEMU's prefix, as libvirt gives guests by default.
MAC_PREFIX = "52:54:00"


def random_mac() -> str:
    return MAC_PREFIX + ":" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(3))


def network_of(subnet: Subnet) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(subnet.cidr)


def default_pools(
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network, gateway: IPAddress | None
) -> list[dict[str, str]]:
    """Every usable address of `cidr` but the gateway, as one or two ranges."""
    first = next(cidr.hosts(), None)
    if first is None:
        return []
    last = int(cidr[-1]) if cidr.prefixlen >= cidr.max_prefixlen - 1 else int(cidr[-1]) - 1
    low = int(first)
    make = ipaddress.ip_address
    if gateway is None or not low <= int(gateway) <= last:
        return [{"start": str(first), "end": str(make(last))}]
    pools = []
    if int(gateway) > low:
        pools.append({"start": str(first), "end": str(make(int(gateway) - 1))})
    if int(gateway) < last:
        pools.append({"start": str(make(int(gateway) + 1)), "end": str(make(last))})
    return pools


def pool_ranges(subnet: Subnet) -> list[tuple[IPAddress, IPAddress]]:
    return [
        (ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"]))
        for pool in subnet.allocation_pools
    ]


def pool_size(subnet: Subnet) -> int:
    return sum(int(end) - int(start) + 1 for start, end in pool_ranges(subnet))


def _pool_address(subnet: Subnet, index: int) -> IPAddress:
    """The index-th address of the subnet's pools, in order."""
    for start, end in pool_ranges(subnet):
        size = int(end) - int(start) + 1
        if index < size:
            return start + index
        index -= size
    raise IndexError(index)


def _rotation(subnet: Subnet) -> Iterator[tuple[int, IPAddress]]:
    size = pool_size(subnet)
    for step in range(size):
        index = (subnet.next_index + step) % size
        yield index, _pool_address(subnet, index)


def check_address(subnet: Subnet, ip: str, *, gateway_ok: bool = False) -> str:
    """A requested fixed address: in the subnet, not its network or broadcast address, nor
    its gateway (unless `gateway_ok`: a router's interface holds it). Returns it
    normalised."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError as exc:
        raise InvalidRequest(f"{ip!r} is not an IP address.", code="invalid_ip_address") from exc
    network = network_of(subnet)
    if address not in network:
        raise InvalidRequest(
            f"{address} is not in subnet {subnet.cidr}.",
            code="ip_not_in_subnet",
            details={"subnet": str(subnet.pk), "cidr": subnet.cidr},
        )
    gateway = ipaddress.ip_address(subnet.gateway_ip) if subnet.gateway_ip else None
    if address == gateway and not gateway_ok:
        raise ConflictError(f"{address} is the subnet's gateway.", code="ip_in_use")
    edges = (network.network_address, network.broadcast_address)
    if network.version == 4 and network.prefixlen < 31 and address in edges:
        raise InvalidRequest(
            f"{address} is the network or broadcast address of {subnet.cidr}.",
            code="invalid_ip_address",
        )
    return str(address)


def allocate(port: Port, subnet: Subnet, ip: str | None = None) -> FixedIP:
    """Give `port` an address of `subnet`: `ip` when asked (409 `ip_in_use` if taken), else
    the next free address of the pools. Must run inside the caller's transaction: the
    subnet's row stays locked until it commits."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ipam.allocate must run inside the creating transaction")
    locked = Subnet.objects.select_for_update().get(pk=subnet.pk)
    taken = set(FixedIP.objects.filter(subnet=locked).values_list("ip", flat=True))
    if ip is not None:
        router = port.device_owner == Port.Owner.ROUTER_INTERFACE
        address = check_address(locked, ip, gateway_ok=router)
        if address in taken:
            raise ConflictError(
                f"{address} is already in use in subnet {locked.cidr}.",
                code="ip_in_use",
                details={"ip_address": address},
            )
        return _insert(port, locked, address)
    for index, candidate in _rotation(locked):
        if str(candidate) in taken:
            continue
        fixed = _insert(port, locked, str(candidate))
        Subnet.objects.filter(pk=locked.pk).update(next_index=index + 1)
        subnet.next_index = index + 1
        return fixed
    raise ConflictError(
        f"No address left in subnet {locked.cidr}.",
        code="no_address_available",
        details={"subnet": str(locked.pk), "cidr": locked.cidr, "pool_size": pool_size(locked)},
    )


def _insert(port: Port, subnet: Subnet, address: str) -> FixedIP:
    try:
        with transaction.atomic():
            return FixedIP.objects.create(port=port, subnet=subnet, ip=address)
    except IntegrityError as exc:  # cannot happen under the lock; the constraint decides
        raise ConflictError(
            f"{address} is already in use in subnet {subnet.cidr}.", code="ip_in_use"
        ) from exc


def subnet_usage(subnet: Subnet) -> dict[str, Any]:
    """How full a subnet is (the API shows it)."""
    used = FixedIP.objects.filter(subnet=subnet).count()
    return {"used": used, "total": pool_size(subnet)}
