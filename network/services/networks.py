"""Creating, renaming and deleting networks; the tenant's default network."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.db import IntegrityError, transaction

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from network.models import FloatingIP, Network, Port, Subnet
from network.services import realise
from network.services.names import check_description, check_name
from tenants.models import Tenant
from tenants.quotas import quota_enforce

MIN_MTU, MAX_MTU = 576, 9000
DEFAULT_NETWORK_NAME = "default"


def _check_mtu(mtu: int) -> int:
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise InvalidRequest(f"An MTU is between {MIN_MTU} and {MAX_MTU}.", code="invalid_mtu")
    return mtu


def _insert(network: Network) -> Network:
    try:
        with transaction.atomic():
            network.save(force_insert=True)
    except IntegrityError as exc:  # lost a race on the name
        raise ConflictError(
            f"A network named {network.name!r} exists.", code="already_exists"
        ) from exc
    return network


@transaction.atomic
def network_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    description: str = "",
    mtu: int | None = None,
) -> Network:
    """A tenant network (a logical switch), within the `networks` quota; names are unique
    in the tenant. Realised in OVN by an operation."""
    check_name("network", name)
    check_description(description)
    quota_enforce(tenant, "networks")
    if Network.objects.filter(tenant=tenant, name=name).exists():
        raise ConflictError(f"A network named {name!r} exists.", code="already_exists")
    network = _insert(
        Network(
            tenant=tenant,
            name=name,
            description=description,
            mtu=_check_mtu(mtu or settings.TENANT_NETWORK_MTU),
        )
    )
    audit_record(
        actor=actor, action="network.create", tenant_id=tenant.pk, target=network,
        details={"mtu": network.mtu},
    )  # fmt: skip
    realise.network_changed(network)
    return network


@transaction.atomic
def provider_network_create(
    *,
    actor: Actor,
    name: str,
    physical_network: str,
    external: bool = True,
    shared: bool = False,
    mtu: int = 1500,
    description: str = "",
) -> Network:
    """An operator's network: `external` (a provider network on the host bridge mapping
    `physical_network`: router gateways and floating IPs) and/or `shared` with every
    tenant."""
    check_name("network", name)
    check_description(description)
    if external and not physical_network:
        raise InvalidRequest(
            "An external network needs the physical network it sits on.",
            code="physical_network_required",
        )
    if physical_network:
        check_name("physical network", physical_network)
    if Network.objects.filter(tenant=None, name=name).exists():
        raise ConflictError(f"A network named {name!r} exists.", code="already_exists")
    network = _insert(
        Network(
            tenant=None,
            name=name,
            description=description,
            shared=shared,
            external=external,
            physical_network=physical_network,
            mtu=_check_mtu(mtu),
        )
    )
    audit_record(
        actor=actor, action="network.create", target=network,
        details={"external": external, "shared": shared, "physical_network": physical_network},
    )  # fmt: skip
    realise.network_changed(network)
    return network


@transaction.atomic
def network_update(
    *, actor: Actor, network: Network, name: str | None = None, description: str | None = None
) -> Network:
    network = Network.objects.select_for_update().get(pk=network.pk)
    changes: dict[str, str] = {}
    if name is not None and name != network.name:
        check_name("network", name)
        if Network.objects.filter(tenant=network.tenant, name=name).exists():
            raise ConflictError(f"A network named {name!r} exists.", code="already_exists")
        changes["name"] = network.name = name
    if description is not None:
        changes["description"] = network.description = check_description(description)
    if changes:
        try:
            with transaction.atomic():
                network.save(update_fields=list(changes))
        except IntegrityError as exc:
            raise ConflictError(f"A network named {name!r} exists.", code="already_exists") from exc
        audit_record(
            actor=actor, action="network.update", tenant_id=network.tenant_id, target=network,
            details=changes,
        )  # fmt: skip
    return network


def ports_in_use(network: Network) -> int:
    """Ports that keep a network alive: any but its routers' interfaces (removed with their
    router interface, not with the network)."""
    return Port.objects.filter(network=network).count()


@transaction.atomic
def network_delete(*, actor: Actor, network: Network) -> None:
    """Delete a network with no port left on it (409 `network_in_use` otherwise; router
    interfaces count: remove them from the router first). Its subnets go with it."""
    network = Network.objects.select_for_update().get(pk=network.pk)
    in_use = ports_in_use(network)
    if in_use:
        raise ConflictError(
            f"Network {network.name} still has {in_use} port(s): delete its instances' ports "
            "and remove it from its routers first.",
            code="network_in_use",
            details={"ports": in_use},
        )
    if FloatingIP.objects.filter(network=network).exists():
        raise ConflictError(
            f"Floating IPs of network {network.name} are still allocated.",
            code="network_in_use",
        )
    audit_record(actor=actor, action="network.delete", tenant_id=network.tenant_id, target=network)
    realise.network_removed(network.pk)
    Subnet.objects.filter(network=network).delete()
    Network.objects.filter(pk=network.pk).delete()


def _default_cidr(tenant: Tenant) -> str:
    """A CIDR for a tenant's default network: settings.TENANT_DEFAULT_CIDR when set (every
    tenant the same range: OVN keeps tenants apart, overlapping is fine); otherwise a /27 of
    settings.TENANT_NETWORK_SUPERNETS that no other default network holds (networks
    realised as libvirt bridges in the host's namespace cannot overlap)."""
    if settings.TENANT_DEFAULT_CIDR:
        return str(ipaddress.ip_network(settings.TENANT_DEFAULT_CIDR))
    taken = set(Subnet.objects.filter(network__is_default=True).values_list("cidr", flat=True))
    for supernet in settings.TENANT_NETWORK_SUPERNETS:
        for cidr in ipaddress.ip_network(supernet).subnets(new_prefix=27):
            if str(cidr) not in taken:
                return str(cidr)
    raise ConflictError("No subnet left for a new tenant network.", code="no_network_available")


def default_network(*, actor: Actor, tenant: Tenant) -> Network:
    """The network instances get when their request names none: the tenant's `default`
    network with one subnet (settings.TENANT_DEFAULT_CIDR), made on first use. Must run in
    the caller's transaction, after the tenant's row was locked (quota_enforce), so that two
    first instances of one tenant make one default network."""
    existing = Network.objects.filter(tenant=tenant, is_default=True).first()
    if existing is not None:
        return existing
    from network.services.subnets import subnet_create  # subnets import networks

    name = DEFAULT_NETWORK_NAME
    if Network.objects.filter(tenant=tenant, name=name).exists():
        name = f"{DEFAULT_NETWORK_NAME}-{str(tenant.pk)[:8]}"
    network = _insert(
        Network(tenant=tenant, name=name, is_default=True, mtu=settings.TENANT_NETWORK_MTU)
    )
    audit_record(
        actor=actor, action="network.create", tenant_id=tenant.pk, target=network,
        details={"default": True},
    )  # fmt: skip
    subnet = subnet_create(
        actor=actor,
        tenant=tenant,
        network=network,
        cidr=_default_cidr(tenant),
        name=name,
        dns_nameservers=list(settings.TENANT_DNS_SERVERS),
        quota=False,
    )
    if settings.TENANT_DEFAULT_ROUTER:
        from network.services.routers import default_router  # routers import ports → here

        default_router(actor=actor, tenant=tenant, subnet=subnet)
    realise.network_changed(network)
    return network
