"""Worker handlers of resize and revert-resize (the API side: compute.services.resize)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.db import transaction

from compute.models import Instance
from compute.services import scheduler
from compute.worker.steps import (
    GIB,
    domain_spec,
    pool_names,
    run_steps,
    shutdown_steps,
    stores_no_data,
    wait_running,
)
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hypervisor.base import DriverError, Hypervisor, PowerState
from iaas.audit import audit_record
from network.selectors import device_ports
from operations.messages import tenant_text
from operations.models import Operation
from operations.services.outcomes import fail
from operations.services.runs import finish, worker_actor

logger = logging.getLogger(__name__)


def _define_at(hv: Hypervisor, instance: Instance, size: dict[str, Any]) -> None:
    """Define the instance's domain with the vCPUs and memory of `size`."""
    spec = domain_spec(instance, device_ports(instance.pk))
    hv.define_domain(
        dataclasses.replace(spec, vcpus=int(size["vcpus"]), memory_mb=int(size["memory_mb"]))
    )


def _back_to_old_size(
    hv: Hypervisor,
    operation: Operation,
    instance: Instance,
    *,
    was_active: bool,
    error: str = "",
) -> None:
    """The guest runs (or rests) at its old vCPUs and memory again: the allocation shrinks
    back, the instance returns to its old flavor, the operation ends (failed with `error`,
    which is then also the instance's fault). A root disk grown on the way stays grown (a
    qcow2 cannot shrink), so it stays counted — in quota and on the host — at its real size:
    a resize then a revert never gains disk for free."""
    old = {key: int(operation.params["old"][key]) for key in ("vcpus", "memory_mb", "disk_gb")}
    disk_gb = _root_disk_gb(hv, instance)
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance.pk)
        # The host cannot say: count the larger size held while the resize ran.
        old["disk_gb"] = max(old["disk_gb"], locked.disk_gb if disk_gb is None else disk_gb)
        scheduler.resize_allocation(locked, **old)  # back to the old size: always fits
        Instance.objects.filter(pk=instance.pk).update(
            status=Instance.Status.ACTIVE if was_active else Instance.Status.STOPPED,
            task_state=None,
            power_state=PowerState.RUNNING if was_active else PowerState.SHUTOFF,
            fault=error[:2000],
            flavor_id=locked.previous_flavor_id or locked.flavor_id,
            previous_flavor_id=None,
            **old,
        )
        finish(operation, error=error)


def _root_disk_gb(hv: Hypervisor, instance: Instance) -> int | None:
    """The root disk's size on the host, in whole GiB; None when the host cannot say."""
    host = instance.host
    assert host is not None
    pool = pool_names(host)["instances"]
    try:
        capacity = hv.storage_volume_info(pool, naming.root_disk(instance.pk)).capacity_bytes
    except DriverError:
        logger.warning("instance %s: root disk size unknown after a resize", instance.pk)
        return None
    return -(-capacity // GIB)


def _redefine(operation: Operation, instance: Instance, *, target: str) -> None:
    """Stop the guest, grow the root disk if the target flavor needs it (resize only),
    redefine the domain with the target's vCPUs and memory, start it if it was running."""
    host = instance.host
    assert host is not None
    hv = hypervisor_for(host)
    name = naming.domain(instance.pk)
    size = operation.params[target]
    was_active = bool(operation.params.get("was_active"))
    verb = "resize" if target == "new" else "revert_resize"

    def grow_disk() -> None:
        pool = pool_names(host)["instances"]
        wanted = int(size["disk_gb"]) * GIB
        if hv.storage_volume_info(pool, naming.root_disk(instance.pk)).capacity_bytes < wanted:
            if stores_no_data(host):
                return  # libvirt's fake hypervisor cannot resize volumes (virStorageVolResize)
            hv.resize_storage_volume(pool, naming.root_disk(instance.pk), wanted)

    steps = shutdown_steps(hv, instance)
    if target == "new":
        steps.append(("grow_disk", grow_disk))
    steps.append(("define", lambda: _define_at(hv, instance, size)))
    if was_active:
        steps += [
            ("start", lambda: hv.start_domain(name)),
            ("wait_running", lambda: wait_running(hv, instance)),
        ]
    try:
        run_steps(operation, steps)
    except Exception as exc:
        if target == "new" and _roll_back_resize(hv, operation, instance, exc):
            return
        # Nothing to go back to (a failed revert, or a host that cannot even redefine the
        # old size): error; the capacity stays claimed at the larger size until deleted.
        fail(operation, instance, verb, exc, status=Instance.Status.ERROR)
        return
    if target == "old":
        _back_to_old_size(hv, operation, instance, was_active=was_active)
        return
    power = PowerState.RUNNING if was_active else PowerState.SHUTOFF
    with transaction.atomic():
        Instance.objects.filter(pk=instance.pk).update(
            status=Instance.Status.VERIFY_RESIZE, task_state=None, power_state=power, fault=""
        )
        finish(operation)


def _roll_back_resize(
    hv: Hypervisor, operation: Operation, instance: Instance, exc: Exception
) -> bool:
    """A resize failed: put the guest back on its old size (forced off, redefined, booted if
    it was running), release the extra capacity and tell the tenant why, as a revert would.
    A root disk grown meanwhile stays grown (it cannot shrink). False when the old size
    cannot be restored either (the caller then puts the instance in error)."""
    host = instance.host
    assert host is not None
    name = naming.domain(instance.pk)
    old = operation.params["old"]
    was_active = bool(operation.params.get("was_active"))
    try:
        hv.destroy_domain(name)  # already off: a no-op
        _define_at(hv, instance, old)
        if was_active:
            hv.start_domain(name)
            wait_running(hv, instance)
    except Exception:
        logger.exception("instance %s: the failed resize could not be rolled back", name)
        return False
    logger.warning("resize of instance %s failed and was rolled back: %s", name, exc)
    fault = (
        f"The resize to flavor {operation.params['new']['flavor']} failed: "
        f"{tenant_text(exc)}. The instance is back on flavor {old['flavor']}."
    )
    with transaction.atomic():
        _back_to_old_size(hv, operation, instance, was_active=was_active, error=fault)
        audit_record(
            actor=worker_actor(),
            action="instance.resize",
            tenant_id=instance.tenant_id,
            target=instance,
            outcome="failed",
            details={"error": str(exc)[:500], "operation": str(operation.pk), "rolled_back": True},
        )
    return True


def run_resize(operation: Operation, instance: Instance) -> None:
    _redefine(operation, instance, target="new")


def run_revert_resize(operation: Operation, instance: Instance) -> None:
    _redefine(operation, instance, target="old")
