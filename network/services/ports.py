"""Ports: creation with addresses from the IPAM, security groups, binding to a device, and
release. The compute app calls `device_ports_create` / `device_ports_release` with its
instance's id: a port names its device by id, never by a foreign key."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from network.models import FloatingIP, Network, Port, SecurityGroup, Subnet
from network.models.status import Realisation
from network.services import ipam, realise
from network.services.names import check_name
from network.services.security_groups import default_security_group
from tenants.models import Tenant
from tenants.quotas import quota_enforce

MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MAC_RETRIES = 8


@dataclass(frozen=True)
class FixedIPRequest:
    subnet: Subnet | None = None  # None: the network's first IPv4 subnet
    ip_address: str | None = None  # None: the next free address


@dataclass(frozen=True)
class PortRequest:
    """What a port is made of; every field but `network` has a default."""

    network: Network
    name: str = ""
    fixed_ips: tuple[FixedIPRequest, ...] | None = None  # None: one address, any subnet
    security_groups: tuple[SecurityGroup, ...] | None = None  # None: the tenant's default
    port_security_enabled: bool = True
    mac: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _check_mac(mac: str) -> str:
    mac = mac.lower()
    if not MAC_PATTERN.fullmatch(mac) or int(mac[:2], 16) & 1:
        raise InvalidRequest(
            f"{mac!r} is not a unicast MAC address (aa:bb:cc:dd:ee:ff).", code="invalid_mac"
        )
    return mac


def _check_network(tenant: Tenant, network: Network) -> None:
    if network.tenant_id not in (None, tenant.pk):
        raise InvalidRequest("The network is not one of yours.", code="invalid_network")
    if network.tenant_id is None and network.external and not network.shared:
        raise InvalidRequest(
            f"{network.name} is an external network: reach it through a router and a "
            "floating IP, not with a port of your own.",
            code="external_network",
        )


def _insert_port(port: Port, fixed_mac: bool) -> Port:
    for _ in range(MAC_RETRIES):
        try:
            with transaction.atomic():
                port.save(force_insert=True)
            return port
        except IntegrityError as exc:
            if fixed_mac:
                raise ConflictError(
                    f"MAC {port.mac} is already used on network {port.network.name}.",
                    code="mac_in_use",
                ) from exc
            port.mac = ipam.random_mac()
    raise ConflictError("Could not find a free MAC address; retry.", code="mac_contention")


def _first_subnet(network: Network) -> Subnet | None:
    return Subnet.objects.filter(network=network, ip_version=4).order_by("created_at").first()


def _security_groups(
    actor: Actor, tenant: Tenant, request: PortRequest
) -> tuple[SecurityGroup, ...]:
    if not request.port_security_enabled:
        if request.security_groups:
            raise InvalidRequest(
                "A port without port security has no security groups.",
                code="port_security_disabled",
            )
        return ()
    if request.security_groups is None:
        return (default_security_group(actor=actor, tenant=tenant),)
    for group in request.security_groups:
        if group.tenant_id != tenant.pk:
            raise InvalidRequest(
                "A security group is not one of yours.", code="invalid_security_group"
            )
    return request.security_groups


def build_port(
    *,
    actor: Actor,
    tenant: Tenant,
    request: PortRequest,
    device_id: uuid.UUID | None = None,
    device_owner: str = "",
    binding_host: str = "",
    delete_with_device: bool = False,
    device_index: int | None = None,
) -> Port:
    """Insert a port with its addresses, in the caller's transaction (which must hold the
    tenant's lock, taken by quota_enforce). No audit event and no quota: the callers'."""
    check_name("port", request.name, blank=True)
    network = request.network
    if device_owner in ("", Port.Owner.INSTANCE):
        _check_network(tenant, network)
    mac = _check_mac(request.mac) if request.mac else ipam.random_mac()
    groups = (
        _security_groups(actor, tenant, request)
        if device_owner in ("", Port.Owner.INSTANCE)
        else ()
    )
    port = _insert_port(
        Port(
            network=network,
            tenant=tenant,
            name=request.name,
            mac=mac,
            device_id=device_id,
            device_owner=device_owner,
            binding_host=binding_host,
            port_security_enabled=request.port_security_enabled,
            delete_with_device=delete_with_device,
            device_index=device_index,
        ),
        fixed_mac=request.mac is not None,
    )
    wanted = request.fixed_ips
    if wanted is None:
        subnet = _first_subnet(network)
        wanted = (FixedIPRequest(subnet=subnet),) if subnet is not None else ()
    for fixed in wanted:
        subnet = fixed.subnet or _first_subnet(network)
        if subnet is None or subnet.network_id != network.pk:
            raise InvalidRequest(
                f"Network {network.name} has no such subnet.", code="invalid_subnet"
            )
        ipam.allocate(port, subnet, fixed.ip_address)
    if groups:
        port.security_groups.set(groups)
    return port


def port_summary(port: Port) -> dict[str, Any]:
    return {
        "network": str(port.network_id),
        "mac": port.mac,
        "fixed_ips": [f.ip for f in port.fixed_ips.all()],
        "device_id": str(port.device_id) if port.device_id else None,
    }


@transaction.atomic
def port_create(*, actor: Actor, tenant: Tenant, request: PortRequest) -> Port:
    """A port the tenant makes itself (to give to an instance later), within `ports`."""
    quota_enforce(tenant, "ports")
    port = build_port(actor=actor, tenant=tenant, request=request)
    audit_record(
        actor=actor, action="port.create", tenant_id=tenant.pk, target=port,
        details=port_summary(port),
    )  # fmt: skip
    _changed(port)
    return port


def _changed(port: Port) -> None:
    realise.port_changed(port)


@transaction.atomic
def port_update(
    *,
    actor: Actor,
    port: Port,
    name: str | None = None,
    security_groups: tuple[SecurityGroup, ...] | None = None,
    port_security_enabled: bool | None = None,
) -> Port:
    """Rename a port, change its security groups (reaching a running guest in OVN's time),
    or turn its port security off (no groups then) or on."""
    port = Port.objects.select_for_update().get(pk=port.pk)
    if port.device_owner.startswith("network:"):
        raise ConflictError(
            "This port belongs to a router or a floating IP.", code="port_owned_by_network"
        )
    before = set(port.security_groups.all())
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = port.name = check_name("port", name, blank=True)
    if port_security_enabled is not None:
        changes["port_security_enabled"] = port.port_security_enabled = port_security_enabled
    if port.port_security_enabled:
        if security_groups is not None:
            for group in security_groups:
                if group.tenant_id != port.tenant_id:
                    raise InvalidRequest(
                        "A security group is not one of yours.", code="invalid_security_group"
                    )
            port.security_groups.set(security_groups)
            changes["security_groups"] = sorted(str(g.pk) for g in security_groups)
    else:
        if security_groups:
            raise InvalidRequest(
                "A port without port security has no security groups.",
                code="port_security_disabled",
            )
        port.security_groups.clear()
        changes["security_groups"] = []
    if not changes:
        return port
    port.status = Realisation.BUILDING
    port.save(
        update_fields=[k for k in ("name", "port_security_enabled") if k in changes] + ["status"]
    )
    audit_record(
        actor=actor, action="port.update", tenant_id=port.tenant_id, target=port, details=changes
    )
    realise.port_changed(port)
    # The groups it left: their membership in OVN (the port joins its new ones itself).
    for group in before - set(port.security_groups.all()):
        realise.security_group_changed(group)
    return port


@transaction.atomic
def port_delete(*, actor: Actor, port: Port) -> None:
    """Delete a port of the tenant's that no instance uses (409 `port_in_use`: detach it
    from its instance first) and that is no router's or floating IP's (409
    `port_owned_by_network`). Its floating IP, if any, is disassociated."""
    port = Port.objects.select_for_update().get(pk=port.pk)
    if port.device_owner.startswith("network:"):
        raise ConflictError(
            "This port belongs to a router or a floating IP: remove the router interface "
            "or release the floating IP instead.",
            code="port_owned_by_network",
        )
    if port.device_id is not None:
        raise ConflictError(
            "This port is attached to an instance: detach it first.",
            code="port_in_use",
            details={"device_id": str(port.device_id)},
        )
    audit_record(
        actor=actor, action="port.delete", tenant_id=port.tenant_id, target=port,
        details=port_summary(port),
    )  # fmt: skip
    remove_port(port)


def remove_port(port: Port) -> None:
    """Delete a port row (its addresses go with it), disassociating its floating IPs, and
    ask OVN to follow."""
    routers = set(
        FloatingIP.objects.filter(port=port).exclude(router=None).values_list("router", flat=True)
    )
    FloatingIP.objects.filter(port=port).update(port=None, fixed_ip=None, router=None)
    Port.objects.filter(pk=port.pk).delete()
    realise.port_removed(port.pk)  # it leaves its groups with it
    for router_id in routers:
        realise.router_changed(router_id)
