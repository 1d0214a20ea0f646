"""Tenant-scoped reads of network resources, all through `tenants.selectors.tenant_scoped`.

Operator-owned networks (`tenant` null) are visible to a tenant when they are `shared` or
`external`; their subnets likewise. Everything else a tenant sees is its own: a foreign
resource is not found (404)."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, Q, QuerySet

from network.models import (
    FixedIP,
    FloatingIP,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from tenants.models import Tenant
from tenants.selectors import tenant_scoped

#: Operator-owned resources every tenant may see and use.
_PUBLIC_NETWORK = Q(tenant=None) & (Q(shared=True) | Q(external=True))


def network_list(tenant: Tenant) -> QuerySet[Network]:
    """The tenant's networks and the shared or external ones of the operators."""
    own = tenant_scoped(Network.objects.all(), tenant)
    return (own | Network.objects.filter(_PUBLIC_NETWORK)).prefetch_related("subnets")


def network_find(tenant: Tenant, ref: str) -> Network | None:
    """A network the tenant may use, by id or name (its own first)."""
    networks = network_list(tenant)
    try:
        return networks.filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return networks.filter(name=ref).order_by("tenant_id").first()


def subnet_list(tenant: Tenant) -> QuerySet[Subnet]:
    own = tenant_scoped(Subnet.objects.all(), tenant)
    public = Subnet.objects.filter(
        Q(network__tenant=None) & (Q(network__shared=True) | Q(network__external=True))
    )
    return (own | public).select_related("network")


def subnet_find(tenant: Tenant, ref: str) -> Subnet | None:
    try:
        return subnet_list(tenant).filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return None


def _with_addresses(ports: QuerySet[Port]) -> QuerySet[Port]:
    return ports.select_related("network").prefetch_related(
        Prefetch("fixed_ips", queryset=FixedIP.objects.order_by("pk")),
        "security_groups",
    )


def port_list(tenant: Tenant) -> QuerySet[Port]:
    return _with_addresses(tenant_scoped(Port.objects.all(), tenant))


def port_find(tenant: Tenant, ref: str) -> Port | None:
    try:
        return port_list(tenant).filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return None


def device_ports(device_id: uuid.UUID) -> list[Port]:
    """A device's ports with their addresses and networks, in NIC order."""
    return list(
        _with_addresses(Port.objects.filter(device_id=device_id))
        .prefetch_related("fixed_ips__subnet")
        .order_by("device_index", "created_at", "pk")
    )


def device_port(device_id: uuid.UUID) -> Port:
    """The first port of a device (Port.DoesNotExist if it has none)."""
    ports = device_ports(device_id)
    if not ports:
        raise Port.DoesNotExist(f"device {device_id} has no port")
    return ports[0]


def first_address(port: Port) -> FixedIP | None:
    """The port's first IPv4 address (prefetched `fixed_ips` used when present)."""
    for fixed in port.fixed_ips.all():
        if ":" not in fixed.ip:
            return fixed
    return None


def security_group_list(tenant: Tenant) -> QuerySet[SecurityGroup]:
    return tenant_scoped(SecurityGroup.objects.all(), tenant).prefetch_related("rules")


def security_group_find(tenant: Tenant, ref: str) -> SecurityGroup | None:
    groups = security_group_list(tenant)
    try:
        return groups.filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return groups.filter(name=ref).first()


def security_group_rule_list(tenant: Tenant) -> QuerySet[SecurityGroupRule]:
    return tenant_scoped(SecurityGroupRule.objects.all(), tenant)


def router_list(tenant: Tenant) -> QuerySet[Router]:
    return tenant_scoped(Router.objects.all(), tenant).select_related("external_network")


def router_find(tenant: Tenant, ref: str) -> Router | None:
    routers = router_list(tenant)
    try:
        return routers.filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return routers.filter(name=ref).first()


def router_interfaces(router: Router) -> QuerySet[Port]:
    return _with_addresses(
        Port.objects.filter(device_id=router.pk, device_owner=Port.Owner.ROUTER_INTERFACE)
    )


def router_gateway_port(router: Router) -> Port | None:
    return (
        _with_addresses(
            Port.objects.filter(device_id=router.pk, device_owner=Port.Owner.ROUTER_GATEWAY)
        )
        .order_by("created_at")
        .first()
    )


def floating_ip_list(tenant: Tenant) -> QuerySet[FloatingIP]:
    return tenant_scoped(FloatingIP.objects.all(), tenant).select_related("network", "port")
