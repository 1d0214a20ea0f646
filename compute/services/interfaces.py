"""Attaching and detaching an instance's network interfaces, live (DESIGN §7): the port is
made or bound here, under the tenant's lock; a worker on the instance's host plugs the NIC
into the running guest and its definition (or takes it out)."""

from __future__ import annotations

from django.db import transaction

from compute.models import Instance
from compute.services.instances import queue_operation
from compute.states import INSTANCE_LIFECYCLE
from iaas.audit import Actor
from iaas.errors import InvalidRequest
from network.models import Network, Port, SecurityGroup
from network.services.devices import device_port_add
from operations.models import Operation


@transaction.atomic
def instance_interface_attach(
    *,
    actor: Actor,
    instance: Instance,
    network: Network | None = None,
    port: Port | None = None,
    security_groups: tuple[SecurityGroup, ...] | None = None,
) -> tuple[Port, Operation]:
    """A new NIC for an active or stopped, idle instance (409 `wrong_state` otherwise): a
    new port on `network` (within the `ports` quota) or the tenant's free `port`; the
    operation plugs it in. The guest sees it at once (hot-plug) and keeps it."""
    INSTANCE_LIFECYCLE.begin(instance, "attach_interface")
    assert instance.host is not None
    made = device_port_add(
        actor=actor,
        tenant=instance.tenant,
        device_id=instance.pk,
        binding_host=instance.host.name,
        network=network,
        port=port,
        security_groups=security_groups,
    )
    operation = queue_operation(
        actor=actor, instance=instance, action="instance.attach_interface",
        params={"port": str(made.pk)},
    )  # fmt: skip
    return made, operation


@transaction.atomic
def instance_interface_detach(*, actor: Actor, instance: Instance, port: Port) -> Operation:
    """Take one NIC out of an active or stopped, idle instance; the port is deleted if it
    was made for the instance, else it is free again (the worker does both)."""
    if port.device_id != instance.pk or port.device_owner != Port.Owner.INSTANCE:
        raise InvalidRequest("That port is not an interface of this instance.",
                             code="not_an_interface")  # fmt: skip
    INSTANCE_LIFECYCLE.begin(instance, "detach_interface")
    return queue_operation(
        actor=actor, instance=instance, action="instance.detach_interface",
        params={"port": str(port.pk)},
    )  # fmt: skip
