"""Routers: interfaces on the tenant's subnets, a gateway on an external network (SNAT)."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from network.models import FixedIP, FloatingIP, Network, Port, Router, Subnet
from network.services import ipam, realise
from network.services.names import check_name
from network.services.ports import FixedIPRequest, PortRequest, build_port
from tenants.models import Tenant
from tenants.quotas import quota_enforce


def _check_external(network: Network | None) -> None:
    if network is not None and not network.external:
        raise InvalidRequest(
            f"{network.name} is not an external network.", code="not_external_network"
        )


def _gateway_port(router: Router) -> Port | None:
    return Port.objects.filter(device_id=router.pk, device_owner=Port.Owner.ROUTER_GATEWAY).first()


def _set_gateway(actor: Actor, router: Router, network: Network | None) -> None:
    """Replace the router's gateway port by one on `network` (None: no gateway)."""
    old = _gateway_port(router)
    if old is not None:
        if FloatingIP.objects.filter(router=router).exists():
            raise ConflictError(
                "Floating IPs use this router's gateway: disassociate them first.",
                code="router_in_use",
            )
        Port.objects.filter(pk=old.pk).delete()
        realise.port_removed(old.pk)
    router.external_network = network
    router.save(update_fields=["external_network"])
    if network is not None:
        gateway = build_port(
            actor=actor,
            tenant=router.tenant,
            request=PortRequest(network=network, port_security_enabled=False),
            device_id=router.pk,
            device_owner=Port.Owner.ROUTER_GATEWAY,
        )
        realise.port_changed(gateway)


@transaction.atomic
def router_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    external_network: Network | None = None,
    enable_snat: bool = True,
    quota: bool = True,
) -> Router:
    """A router, within the `routers` quota; with `external_network`, a gateway port there
    (an address of its pool) from which its subnets reach outside (SNAT)."""
    check_name("router", name)
    _check_external(external_network)
    if quota:
        quota_enforce(tenant, "routers")
    if Router.objects.filter(tenant=tenant, name=name).exists():
        raise ConflictError(f"A router named {name!r} exists.", code="already_exists")
    try:
        with transaction.atomic():
            router = Router.objects.create(tenant=tenant, name=name, enable_snat=enable_snat)
    except IntegrityError as exc:
        raise ConflictError(f"A router named {name!r} exists.", code="already_exists") from exc
    if external_network is not None:
        _set_gateway(actor, router, external_network)
    audit_record(
        actor=actor, action="router.create", tenant_id=tenant.pk, target=router,
        details={"external_network": str(external_network.pk) if external_network else None},
    )  # fmt: skip
    realise.router_changed(router)
    return router


_UNSET = object()


@transaction.atomic
def router_update(
    *,
    actor: Actor,
    router: Router,
    name: str | None = None,
    external_network: object = _UNSET,
    enable_snat: bool | None = None,
) -> Router:
    """Rename, set or clear the gateway (`external_network` a Network or None), SNAT on/off."""
    router = Router.objects.select_for_update().get(pk=router.pk)
    changes: dict[str, object] = {}
    if name is not None and name != router.name:
        check_name("router", name)
        if Router.objects.filter(tenant=router.tenant, name=name).exists():
            raise ConflictError(f"A router named {name!r} exists.", code="already_exists")
        changes["name"] = router.name = name
        router.save(update_fields=["name"])
    if enable_snat is not None and enable_snat != router.enable_snat:
        changes["enable_snat"] = router.enable_snat = enable_snat
        router.save(update_fields=["enable_snat"])
    if external_network is not _UNSET and external_network != router.external_network:
        assert external_network is None or isinstance(external_network, Network)
        _check_external(external_network)
        _set_gateway(actor, router, external_network)
        changes["external_network"] = str(external_network.pk) if external_network else None
    if changes:
        audit_record(
            actor=actor, action="router.update", tenant_id=router.tenant_id, target=router,
            details=changes,
        )  # fmt: skip
        realise.router_changed(router)
    return router


@transaction.atomic
def router_delete(*, actor: Actor, router: Router) -> None:
    """Delete a router with no interface left (409 `router_in_use`); its gateway goes too."""
    router = Router.objects.select_for_update().get(pk=router.pk)
    interfaces = Port.objects.filter(
        device_id=router.pk, device_owner=Port.Owner.ROUTER_INTERFACE
    ).count()
    if interfaces:
        raise ConflictError(
            f"Router {router.name} still has {interfaces} interface(s): remove them first.",
            code="router_in_use",
            details={"interfaces": interfaces},
        )
    if FloatingIP.objects.filter(router=router).exists():
        raise ConflictError(
            f"Floating IPs are associated through router {router.name}.", code="router_in_use"
        )
    audit_record(actor=actor, action="router.delete", tenant_id=router.tenant_id, target=router)
    gateway = _gateway_port(router)
    if gateway is not None:
        Port.objects.filter(pk=gateway.pk).delete()
        realise.port_removed(gateway.pk)
    Router.objects.filter(pk=router.pk).delete()
    realise.router_removed(router.pk)


def _interface_on(subnet: Subnet) -> Port | None:
    return Port.objects.filter(
        device_owner=Port.Owner.ROUTER_INTERFACE, fixed_ips__subnet=subnet
    ).first()


@transaction.atomic
def router_add_interface(
    *, actor: Actor, router: Router, subnet: Subnet, quota: bool = True
) -> Port:
    """Attach the router to `subnet` through a port holding the subnet's gateway address
    (409 `subnet_has_router` if one already does, `no_gateway` without a gateway)."""
    router = Router.objects.select_for_update().get(pk=router.pk)
    if subnet.tenant_id != router.tenant_id:
        raise InvalidRequest("The subnet is not one of yours.", code="invalid_subnet")
    if not subnet.gateway_ip:
        raise ConflictError(
            f"Subnet {subnet.cidr} has no gateway address for a router.", code="no_gateway"
        )
    if quota:
        quota_enforce(router.tenant, "ports")
    if _interface_on(subnet) is not None:
        raise ConflictError(f"Subnet {subnet.cidr} already has a router.", code="subnet_has_router")
    for port in Port.objects.filter(device_id=router.pk, device_owner=Port.Owner.ROUTER_INTERFACE):
        for fixed in FixedIP.objects.filter(port=port).select_related("subnet"):
            if ipam.network_of(fixed.subnet).overlaps(ipam.network_of(subnet)):
                raise ConflictError(
                    f"{subnet.cidr} overlaps {fixed.subnet.cidr}, already on this router.",
                    code="subnet_overlap",
                )
    if FixedIP.objects.filter(subnet=subnet, ip=subnet.gateway_ip).exists():
        raise ConflictError(
            f"The gateway address {subnet.gateway_ip} is held by another port.", code="ip_in_use"
        )
    port = build_port(
        actor=actor,
        tenant=router.tenant,
        request=PortRequest(
            network=subnet.network,
            fixed_ips=(FixedIPRequest(subnet=subnet, ip_address=subnet.gateway_ip),),
            port_security_enabled=False,
        ),
        device_id=router.pk,
        device_owner=Port.Owner.ROUTER_INTERFACE,
    )
    audit_record(
        actor=actor, action="router.add_interface", tenant_id=router.tenant_id, target=router,
        details={"subnet": str(subnet.pk), "port": str(port.pk)},
    )  # fmt: skip
    realise.port_changed(port)
    realise.router_changed(router)
    return port


@transaction.atomic
def router_remove_interface(*, actor: Actor, router: Router, subnet: Subnet) -> None:
    """Detach the router from `subnet` (409 `router_in_use` while floating IPs reach ports
    of that subnet through it)."""
    router = Router.objects.select_for_update().get(pk=router.pk)
    port = Port.objects.filter(
        device_id=router.pk, device_owner=Port.Owner.ROUTER_INTERFACE, fixed_ips__subnet=subnet
    ).first()
    if port is None:
        raise ConflictError(
            f"Router {router.name} has no interface on {subnet.cidr}.", code="no_such_interface"
        )
    if FloatingIP.objects.filter(router=router, port__fixed_ips__subnet=subnet).exists():
        raise ConflictError(
            "Floating IPs reach this subnet through the router: disassociate them first.",
            code="router_in_use",
        )
    audit_record(
        actor=actor, action="router.remove_interface", tenant_id=router.tenant_id,
        target=router, details={"subnet": str(subnet.pk), "port": str(port.pk)},
    )  # fmt: skip
    Port.objects.filter(pk=port.pk).delete()
    realise.port_removed(port.pk)
    realise.router_changed(router)


def default_external_network() -> Network | None:
    """The external network default routers take their gateway on: the one named by
    settings.DEFAULT_EXTERNAL_NETWORK, or the only external network there is."""
    externals = Network.objects.filter(tenant=None, external=True)
    if settings.DEFAULT_EXTERNAL_NETWORK:
        return externals.filter(name=settings.DEFAULT_EXTERNAL_NETWORK).first()
    found = list(externals[:2])
    return found[0] if len(found) == 1 else None


def default_router(*, actor: Actor, tenant: Tenant, subnet: Subnet) -> Router | None:
    """The router a default network gets, with a gateway on the default external network
    (none when there is no external network: the network stays private)."""
    external = default_external_network()
    if external is None or not Subnet.objects.filter(network=external).exists():
        return None
    name = "default"
    if Router.objects.filter(tenant=tenant, name=name).exists():
        name = f"default-{str(tenant.pk)[:8]}"
    router = router_create(
        actor=actor, tenant=tenant, name=name, external_network=external, quota=False
    )
    router_add_interface(actor=actor, router=router, subnet=subnet, quota=False)
    return router
