"""Floating IPs: allocated from an external network's pool, associated with a port that one
of the tenant's routers reaches from that network, disassociated, released."""

from __future__ import annotations

from django.db import transaction

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from network.models import FloatingIP, Network, Port, Router
from network.models.status import Realisation
from network.selectors import first_address
from network.services import realise
from network.services.ports import PortRequest, build_port
from tenants.models import Tenant
from tenants.quotas import quota_enforce


@transaction.atomic
def floating_ip_create(
    *, actor: Actor, tenant: Tenant, network: Network, port: Port | None = None,
    description: str = "",
) -> FloatingIP:  # fmt: skip
    """Allocate an address of external `network` (409 `no_address_available` when its pool
    is exhausted), within the `floating_ips` quota; with `port`, associate it at once."""
    if not network.external:
        raise InvalidRequest(
            f"{network.name} is not an external network.", code="not_external_network"
        )
    quota_enforce(tenant, "floating_ips")
    holder = build_port(
        actor=actor,
        tenant=tenant,
        request=PortRequest(network=network, port_security_enabled=False),
        device_owner=Port.Owner.FLOATING_IP,
    )
    address = first_address(holder)
    if address is None:
        raise ConflictError(
            f"External network {network.name} has no subnet to take an address from.",
            code="no_address_available",
        )
    floating = FloatingIP.objects.create(
        tenant=tenant, network=network, address_port=holder, address=address.ip,
        description=description[:255],
    )  # fmt: skip
    # The holder only keeps the address in the IPAM: nothing of it goes to OVN.
    Port.objects.filter(pk=holder.pk).update(device_id=floating.pk, status=Realisation.ACTIVE)
    audit_record(
        actor=actor, action="floating_ip.create", tenant_id=tenant.pk, target=floating,
        details={"network": str(network.pk), "address": floating.address},
    )  # fmt: skip
    if port is not None:
        _associate(floating, port)
    return floating


def _router_between(floating: FloatingIP, port: Port) -> tuple[Router, str]:
    """The tenant's router with a gateway on the floating IP's network and an interface on
    the port's subnet, and the port's address there (409 `no_route` otherwise)."""
    fixed = first_address(port)
    if fixed is None:
        raise ConflictError("The port has no IPv4 address.", code="no_route")
    routers = Router.objects.filter(tenant=floating.tenant, external_network=floating.network)
    for router in routers:
        if Port.objects.filter(
            device_id=router.pk,
            device_owner=Port.Owner.ROUTER_INTERFACE,
            fixed_ips__subnet_id=fixed.subnet_id,
        ).exists():
            return router, fixed.ip
    raise ConflictError(
        f"No router of yours joins {floating.network.name} to the port's subnet: add the "
        "subnet to a router with a gateway on that network.",
        code="no_route",
    )


def _associate(floating: FloatingIP, port: Port) -> None:
    if port.tenant_id != floating.tenant_id:
        raise InvalidRequest("The port is not one of yours.", code="invalid_port")
    if port.device_owner.startswith("network:"):
        raise InvalidRequest("A router's or floating IP's port cannot take a floating IP.",
                             code="invalid_port")  # fmt: skip
    if FloatingIP.objects.filter(port=port).exclude(pk=floating.pk).exists():
        raise ConflictError("The port already has a floating IP.", code="port_has_floating_ip")
    router, fixed_ip = _router_between(floating, port)
    old_router = floating.router_id
    floating.port, floating.fixed_ip, floating.router = port, fixed_ip, router
    floating.status = Realisation.BUILDING
    floating.save(update_fields=["port", "fixed_ip", "router", "status"])
    realise.router_changed(router)
    if old_router and old_router != router.pk:
        realise.router_changed(old_router)


@transaction.atomic
def floating_ip_update(*, actor: Actor, floating: FloatingIP, port: Port | None) -> FloatingIP:
    """Associate with `port` (moving it from another port if it had one), or disassociate
    with None."""
    floating = FloatingIP.objects.select_for_update().select_related("network").get(pk=floating.pk)
    before = str(floating.port_id) if floating.port_id else None
    if port is None:
        router = floating.router_id
        floating.port = floating.fixed_ip = floating.router = None
        floating.status = Realisation.BUILDING
        floating.save(update_fields=["port", "fixed_ip", "router", "status"])
        if router:
            realise.router_changed(router)
    else:
        _associate(floating, port)
    audit_record(
        actor=actor, action="floating_ip.update", tenant_id=floating.tenant_id, target=floating,
        details={"port": str(port.pk) if port else None, "previous_port": before},
    )  # fmt: skip
    return floating


@transaction.atomic
def floating_ip_delete(*, actor: Actor, floating: FloatingIP) -> None:
    """Release the address (disassociated first if need be)."""
    floating = FloatingIP.objects.select_for_update().get(pk=floating.pk)
    audit_record(
        actor=actor, action="floating_ip.delete", tenant_id=floating.tenant_id, target=floating,
        details={"address": floating.address},
    )  # fmt: skip
    router = floating.router_id
    holder = floating.address_port
    FloatingIP.objects.filter(pk=floating.pk).delete()
    Port.objects.filter(pk=holder.pk).delete()  # an address only: never in OVN
    if router:
        realise.router_changed(router)
