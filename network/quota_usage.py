"""How network resources count against quotas: from the rows themselves. Ports count the
tenant's own ports (instances' NICs included), not the network's plumbing (router
interfaces and gateways, floating IPs' holders)."""

from __future__ import annotations

from network.models import (
    FloatingIP,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from tenants.models import Tenant


def networks_in_use(tenant: Tenant) -> int:
    return Network.objects.filter(tenant=tenant).count()


def subnets_in_use(tenant: Tenant) -> int:
    return Subnet.objects.filter(tenant=tenant).count()


def ports_in_use(tenant: Tenant) -> int:
    return (
        Port.objects.filter(tenant=tenant)
        .exclude(device_owner__in=[Port.Owner.ROUTER_GATEWAY, Port.Owner.FLOATING_IP])
        .count()
    )


def routers_in_use(tenant: Tenant) -> int:
    return Router.objects.filter(tenant=tenant).count()


def security_groups_in_use(tenant: Tenant) -> int:
    return SecurityGroup.objects.filter(tenant=tenant).count()


def security_group_rules_in_use(tenant: Tenant) -> int:
    return SecurityGroupRule.objects.filter(tenant=tenant).count()


def floating_ips_in_use(tenant: Tenant) -> int:
    return FloatingIP.objects.filter(tenant=tenant).count()
