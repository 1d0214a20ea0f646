"""The worker's side of live interface attach and detach (compute.services.interfaces)."""

from __future__ import annotations

import contextlib

from compute.models import Instance
from compute.worker.steps import Steps, ensure_network, run_steps
from hosts import naming
from hosts.hypervisors import hypervisor_for
from network import host_specs
from network.models import Port
from network.services.devices import device_port_release
from operations.models import Operation
from operations.services.outcomes import fail, succeed

#: How long the guest has to let go of a NIC being detached before the detach fails.
DETACH_TIMEOUT_SECONDS = 20


def _port(operation: Operation) -> Port | None:
    return Port.objects.select_related("network").filter(pk=operation.params["port"]).first()


def run_attach_interface(operation: Operation, instance: Instance) -> None:
    """Wait for the port in OVN, then plug the NIC into the guest and its definition. On a
    failure the port leaves the instance again (deleted if made for it): no half state."""
    assert instance.host is not None
    host = instance.host
    hv = hypervisor_for(host)
    port = _port(operation)
    if port is None or port.device_id != instance.pk:
        fail(operation, instance, "attach_interface", LookupError("the port is gone"))
        return
    steps: Steps = [
        ("network", lambda: ensure_network(hv, [port])),
        (
            "attach",
            lambda: hv.attach_nic(naming.domain(instance.pk), host_specs.nic_spec(port, host)),
        ),
    ]
    try:
        run_steps(operation, steps)
    except Exception as exc:
        # Undo what was done (a NIC half plugged, or not at all: both no-ops then).
        with contextlib.suppress(Exception):
            hv.detach_nic(naming.domain(instance.pk), port.mac, DETACH_TIMEOUT_SECONDS)
        device_port_release(port)
        fail(operation, instance, "attach_interface", exc)
        return
    succeed(operation)


def run_detach_interface(operation: Operation, instance: Instance) -> None:
    """Take the NIC out of the guest (it must let go within DETACH_TIMEOUT_SECONDS) and out
    of the definition, then release the port. A guest that holds on: the operation fails,
    the port stays the instance's, and a new detach finishes the job."""
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    port = _port(operation)
    if port is None or port.device_id != instance.pk:
        succeed(operation)  # already gone
        return
    steps: Steps = [
        (
            "detach",
            lambda: hv.detach_nic(naming.domain(instance.pk), port.mac, DETACH_TIMEOUT_SECONDS),
        ),
        ("release", lambda: device_port_release(port)),
    ]
    try:
        run_steps(operation, steps)
    except Exception as exc:
        fail(operation, instance, "detach_interface", exc)
        return
    succeed(operation)


def abandon_attach_interface(operation: Operation, reason: str) -> None:
    """The attach was abandoned (past its deadline, or its host lost): its port leaves the
    instance again (deleted if it was made for it), so the tenant is not left with a NIC
    the guest may never have got. A NIC half-plugged in the definition is taken out by the
    next detach or rebuild; without its port it reaches nothing (port security)."""
    port = _port(operation)
    if port is not None and port.device_id == operation.target_id:
        device_port_release(port)
