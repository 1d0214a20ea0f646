"""The ports of a device (an instance), for the compute app: made or bound when it is
created, released when it goes. Names the device by id only (DESIGN §1)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.db import transaction

from iaas.audit import Actor
from iaas.errors import ConflictError, InvalidRequest
from network.models import Network, Port, SecurityGroup
from network.services import realise
from network.services.networks import default_network
from network.services.ports import PortRequest, build_port, remove_port
from tenants.models import Tenant
from tenants.quotas import quota_enforce

MAX_NICS = 8


@dataclass(frozen=True)
class NicRequest:
    """An instance's NICs as asked for: a new port on each of `networks`, then each of
    `ports`; the new ports in `security_groups` (None: the tenant's default group)."""

    networks: list[Network] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)
    security_groups: tuple[SecurityGroup, ...] | None = None


def device_ports_create(
    *,
    actor: Actor,
    tenant: Tenant,
    device_id: uuid.UUID,
    binding_host: str,
    networks: list[Network] | None = None,
    ports: list[Port] | None = None,
    security_groups: tuple[SecurityGroup, ...] | None = None,
) -> list[Port]:
    """The NICs of a new instance, in order: a new port on each of `networks`, then each of
    the tenant's free `ports` bound to it; neither given: a port on the tenant's default
    network (made, with its router, on first use). Runs in the instance's creating
    transaction after the tenant's lock (quota_enforce) was taken."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("device_ports_create must run inside the creating transaction")
    networks = list(networks or [])
    ports = list(ports or [])
    if len(networks) + len(ports) > MAX_NICS:
        raise InvalidRequest(f"An instance has at most {MAX_NICS} NICs.", code="too_many_nics")
    if not networks and not ports:
        networks = [default_network(actor=actor, tenant=tenant)]
    made: list[Port] = []
    if networks:
        quota_enforce(tenant, "ports", len(networks))
    for network in networks:
        made.append(
            build_port(
                device_index=len(made),
                actor=actor,
                tenant=tenant,
                request=PortRequest(network=network, security_groups=security_groups),
                device_id=device_id,
                device_owner=Port.Owner.INSTANCE,
                binding_host=binding_host,
                delete_with_device=True,
            )
        )
    for port in ports:
        made.append(
            bind(port, device_id=device_id, binding_host=binding_host, device_index=len(made))
        )
    for port in made:
        realise.port_changed(port)
    return made


def bind(port: Port, *, device_id: uuid.UUID, binding_host: str, device_index: int) -> Port:
    """Give a free port of the tenant's to a device as its NIC number `device_index` (409
    `port_in_use` if it has one)."""
    bound = Port.objects.filter(pk=port.pk, device_id=None, device_owner="").update(
        device_id=device_id,
        device_owner=Port.Owner.INSTANCE,
        binding_host=binding_host,
        device_index=device_index,
    )
    if not bound:
        raise ConflictError(f"Port {port.pk} is already attached to a device.", code="port_in_use")
    return Port.objects.get(pk=port.pk)


def device_ports_release(device_id: uuid.UUID) -> None:
    """The device is gone: delete the ports made for it, unbind the ones it was given."""
    for port in Port.objects.filter(device_id=device_id, device_owner=Port.Owner.INSTANCE):
        device_port_release(port)


def device_port_add(
    *,
    actor: Actor,
    tenant: Tenant,
    device_id: uuid.UUID,
    binding_host: str,
    network: Network | None = None,
    port: Port | None = None,
    security_groups: tuple[SecurityGroup, ...] | None = None,
) -> Port:
    """One more NIC for a device: a new port on `network`, or the tenant's free `port`, as
    its next NIC (409 `too_many_nics` past MAX_NICS). In the caller's transaction."""
    if (network is None) == (port is None):
        raise InvalidRequest("Give a network or a port.", code="network_or_port")
    count = Port.objects.filter(device_id=device_id, device_owner=Port.Owner.INSTANCE).count()
    if count >= MAX_NICS:
        raise ConflictError(f"An instance has at most {MAX_NICS} NICs.", code="too_many_nics")
    indexes = Port.objects.filter(device_id=device_id).values_list("device_index", flat=True)
    index = 1 + max((i for i in indexes if i is not None), default=-1)
    if port is not None:
        made = bind(port, device_id=device_id, binding_host=binding_host, device_index=index)
    else:
        assert network is not None
        quota_enforce(tenant, "ports")
        made = build_port(
            actor=actor,
            tenant=tenant,
            request=PortRequest(network=network, security_groups=security_groups),
            device_id=device_id,
            device_owner=Port.Owner.INSTANCE,
            binding_host=binding_host,
            delete_with_device=True,
            device_index=index,
        )
    realise.port_changed(made)
    return made


def device_port_release(port: Port) -> None:
    """A NIC leaves its device: deleted if it was made for it, else free again."""
    if port.delete_with_device:
        remove_port(port)
        return
    Port.objects.filter(pk=port.pk).update(
        device_id=None, device_owner="", binding_host="", device_index=None
    )
    realise.port_changed(port)


def device_ports_move(device_id: uuid.UUID, binding_host: str) -> int:
    """The device now runs on host `binding_host` (a cold migration): its ports say so.
    Returns how many. (OVN binds a port to whichever chassis plugs its interface id, so
    nothing changes in the northbound database.)"""
    return Port.objects.filter(device_id=device_id, device_owner=Port.Owner.INSTANCE).update(
        binding_host=binding_host
    )
