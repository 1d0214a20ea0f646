"""Creating, changing and deleting subnets: CIDR, gateway, allocation pools, DNS servers."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from django.db import IntegrityError, transaction

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from network.models import FixedIP, Network, Subnet
from network.services import ipam, realise
from network.services.names import check_name
from tenants.models import Tenant
from tenants.quotas import quota_enforce

#: IPv4 subnets between /16 and /29: big enough for a real network, small enough that the
#: IPAM's scan of the taken addresses stays cheap.
MIN_PREFIX, MAX_PREFIX = 16, 29
MAX_DNS_SERVERS = 5
#: Marks "no gateway asked for" apart from an explicit null (a subnet without a gateway).
UNSET: Any = object()


def _check_cidr(cidr: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise InvalidRequest(
            f"{cidr!r} is not a network in CIDR notation (e.g. 198.51.100.0/24, with no host "
            "bits set).",
            code="invalid_cidr",
        ) from exc
    if network.version != 4:
        raise InvalidRequest(
            "Only IPv4 subnets are offered for now.", code="ip_version_not_supported"
        )
    if not MIN_PREFIX <= network.prefixlen <= MAX_PREFIX:
        raise InvalidRequest(
            f"A subnet's prefix length is between /{MIN_PREFIX} and /{MAX_PREFIX}.",
            code="invalid_cidr",
        )
    return network


def _address(value: str, what: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.ip_address(value)
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {value!r} is not an IP address.") from exc
    if address.version != 4:
        raise InvalidRequest(f"{what}: {value} is not an IPv4 address.")
    return address


def _check_gateway(
    cidr: ipaddress.IPv4Network, gateway: str | None
) -> ipaddress.IPv4Address | None:
    if gateway is None:
        return None
    address = _address(gateway, "gateway_ip")
    if address not in cidr or address in (cidr.network_address, cidr.broadcast_address):
        raise InvalidRequest(
            f"The gateway {address} is not a host address of {cidr}.", code="invalid_gateway"
        )
    return address


def _check_pools(
    cidr: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address | None,
    pools: list[dict[str, str]],
) -> list[dict[str, str]]:
    ranges: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for pool in pools:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise InvalidRequest(
                'An allocation pool is {"start": <address>, "end": <address>}.',
                code="invalid_allocation_pool",
            )
        start = _address(pool["start"], "allocation_pools")
        end = _address(pool["end"], "allocation_pools")
        hosts = (cidr.network_address + 1, cidr.broadcast_address - 1)
        if not (hosts[0] <= start <= end <= hosts[1]):
            raise InvalidRequest(
                f"The pool {start}-{end} is not an ordered range of host addresses of {cidr}.",
                code="invalid_allocation_pool",
            )
        if gateway is not None and start <= gateway <= end:
            raise InvalidRequest(
                f"The pool {start}-{end} holds the gateway {gateway}.",
                code="invalid_allocation_pool",
            )
        ranges.append((start, end))
    ranges.sort()
    for (_, end), (start, _) in itertools.pairwise(ranges):
        if start <= end:
            raise InvalidRequest("Allocation pools overlap.", code="invalid_allocation_pool")
    return [{"start": str(start), "end": str(end)} for start, end in ranges]


def _check_dns(servers: list[str]) -> list[str]:
    if len(servers) > MAX_DNS_SERVERS:
        raise InvalidRequest(f"At most {MAX_DNS_SERVERS} DNS servers.", code="invalid_dns")
    return [str(_address(server, "dns_nameservers")) for server in servers]


@transaction.atomic
def subnet_create(
    *,
    actor: Actor,
    tenant: Tenant | None,
    network: Network,
    cidr: str,
    name: str = "",
    gateway_ip: Any = UNSET,
    allocation_pools: list[dict[str, str]] | None = None,
    dns_nameservers: list[str] | None = None,
    enable_dhcp: bool = True,
    quota: bool = True,
) -> Subnet:
    """A subnet of `network` (the caller's own, or an operator's network for operators):
    the gateway defaults to the first host address, the pool to every other host address.
    Subnets of one network may not overlap (409 `subnet_overlap`); other networks' may."""
    check_name("subnet", name, blank=True)
    parsed = _check_cidr(cidr)
    gateway = next(parsed.hosts()) if gateway_ip is UNSET else _check_gateway(parsed, gateway_ip)
    pools = (
        _check_pools(parsed, gateway, allocation_pools)
        if allocation_pools
        else ipam.default_pools(parsed, gateway)
    )
    dns = _check_dns(list(dns_nameservers or []))
    if tenant is not None and quota:
        quota_enforce(tenant, "subnets")
    locked = Network.objects.select_for_update().get(pk=network.pk)
    for other in Subnet.objects.filter(network=locked):
        if ipaddress.ip_network(other.cidr).overlaps(parsed):
            raise ConflictError(
                f"{parsed} overlaps subnet {other.cidr} of network {locked.name}.",
                code="subnet_overlap",
                details={"subnet": str(other.pk), "cidr": other.cidr},
            )
    try:
        with transaction.atomic():
            subnet = Subnet.objects.create(
                network=locked,
                tenant=locked.tenant,
                name=name,
                cidr=str(parsed),
                gateway_ip=str(gateway) if gateway is not None else None,
                allocation_pools=pools,
                dns_nameservers=dns,
                enable_dhcp=enable_dhcp,
            )
    except IntegrityError as exc:
        raise ConflictError(f"{parsed} is already a subnet of this network.") from exc
    audit_record(
        actor=actor, action="subnet.create", tenant_id=locked.tenant_id, target=subnet,
        details={"network": str(locked.pk), "cidr": subnet.cidr},
    )  # fmt: skip
    realise.network_changed(locked)
    return subnet


@transaction.atomic
def subnet_update(
    *,
    actor: Actor,
    subnet: Subnet,
    name: str | None = None,
    dns_nameservers: list[str] | None = None,
) -> Subnet:
    """Rename a subnet or change its DNS servers (new leases carry them)."""
    subnet = Subnet.objects.select_for_update().get(pk=subnet.pk)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = subnet.name = check_name("subnet", name, blank=True)
    if dns_nameservers is not None:
        changes["dns_nameservers"] = subnet.dns_nameservers = _check_dns(dns_nameservers)
    if changes:
        subnet.save(update_fields=list(changes))
        audit_record(
            actor=actor, action="subnet.update", tenant_id=subnet.tenant_id, target=subnet,
            details=changes,
        )  # fmt: skip
        realise.network_changed(subnet.network)
    return subnet


@transaction.atomic
def subnet_delete(*, actor: Actor, subnet: Subnet) -> None:
    """Delete a subnet no address is allocated in (409 `subnet_in_use` otherwise)."""
    subnet = Subnet.objects.select_for_update().select_related("network").get(pk=subnet.pk)
    used = FixedIP.objects.filter(subnet=subnet).count()
    if used:
        raise ConflictError(
            f"Subnet {subnet.cidr} still has {used} address(es) in use: delete those ports "
            "(or remove the subnet from its router) first.",
            code="subnet_in_use",
            details={"addresses": used},
        )
    audit_record(
        actor=actor, action="subnet.delete", tenant_id=subnet.tenant_id, target=subnet,
        details={"cidr": subnet.cidr},
    )  # fmt: skip
    network = subnet.network
    Subnet.objects.filter(pk=subnet.pk).delete()
    realise.network_changed(network)
