"""Resizing an instance to another flavor, on its own host: a resize that does not fit on
the instance's host is refused (409 `no_valid_host`); the worker's side is
compute.worker.resize.

The lifecycle: `resize` (from active or stopped) claims the extra capacity first, under the
tenant lock (quota) and the host row lock (placement), sets `flavor` to the new flavor and
`previous_flavor` to the old one, and queues `instance.resize` (status `resizing`). The
worker stops the guest, grows the root disk if needed, redefines the domain with the new
vCPUs and memory and starts it again if it was running: status `verify_resize`. Then:

- `confirm-resize` releases the old capacity: the Allocation, the host's usage and the
  instance's size fields become the new flavor's; status back to active (or stopped).
- `revert-resize` queues `instance.revert_resize`: the domain is redefined with the old
  vCPUs and memory; the Allocation, usage, CPU and memory fields and flavor return to the
  old ones.
  The root disk stays grown (a qcow2 overlay cannot be shrunk safely), and stays counted:
  the instance's `disk_gb` and its allocation keep the disk's real size, larger than its
  flavor says, so a resize then a revert gains no disk for free.

A resize whose worker fails is rolled back at once: the guest is redefined with its old
vCPUs and memory (booted again if it was running), the extra capacity released, and the
instance is back on its old flavor with a fault saying why. Only when even that fails does
it end in `error`, holding the larger claim until it is deleted.

While a resize is pending, `Instance.vcpus/memory_mb/disk_gb` and the Allocation hold the
larger of the old and new size in each dimension, so quota usage (counted from the Instance
rows) and host usage both count what may be in use whichever way the resize ends.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from compute.models import Flavor, Instance
from compute.services import scheduler
from compute.services.instances import (
    queue_operation,
    refuse_boot_from_volume,
    refuse_image_larger_than,
)
from compute.states import INSTANCE_LIFECYCLE
from iaas.audit import Actor, audit_record
from iaas.errors import InvalidRequest
from images.models import Image
from operations.models import Operation
from tenants.quotas import quota_enforce_many


def _size(flavor: Flavor) -> dict[str, int]:
    return {"vcpus": flavor.vcpus, "memory_mb": flavor.memory_mb, "disk_gb": flavor.disk_gb}


@transaction.atomic
def instance_resize(*, actor: Actor, instance: Instance, flavor: Flavor) -> Operation:
    """Accept a resize to `flavor`: quota for the growth (403), the extra capacity on the
    same host (409 `no_valid_host`), then the `instance.resize` operation."""
    instance = Instance.objects.select_related("flavor", "tenant", "host").get(pk=instance.pk)
    INSTANCE_LIFECYCLE.check(instance, "resize")
    refuse_boot_from_volume(instance, "be resized (its disk is a volume: extend it)")
    if flavor.pk == instance.flavor_id:
        raise InvalidRequest("The instance already has this flavor.", code="same_flavor")
    if flavor.disk_gb < instance.disk_gb:
        raise InvalidRequest(
            f"Flavor {flavor.name} has {flavor.disk_gb} GiB of disk, less than the instance's "
            f"{instance.disk_gb} GiB: a disk cannot shrink.",
            code="flavor_disk_smaller",
        )
    image = Image.objects.filter(pk=instance.image_id).first()
    if image is not None:
        refuse_image_larger_than(image, disk_gb=flavor.disk_gb, sized_by=f"flavor {flavor.name}")
    if image is not None and image.min_ram_mb > flavor.memory_mb:
        raise InvalidRequest(
            f"Image {image.name} needs at least {image.min_ram_mb} MiB of RAM; flavor "
            f"{flavor.name} is too small.",
            code="flavor_too_small",
        )
    current = {
        "vcpus": instance.vcpus,
        "memory_mb": instance.memory_mb,
        "disk_gb": instance.disk_gb,
    }
    old: dict[str, Any] = {"flavor": instance.flavor.name, **current}
    new: dict[str, Any] = {"flavor": flavor.name, **_size(flavor)}
    held = {key: max(current[key], int(new[key])) for key in current}
    growth = {
        resource: held[field] - current[field]
        for resource, field in (("vcpus", "vcpus"), ("ram_mb", "memory_mb"), ("disk_gb", "disk_gb"))
        if held[field] > current[field]
    }
    if growth:
        quota_enforce_many(instance.tenant, growth)
    was_active = instance.status == Instance.Status.ACTIVE
    # Take the instance (conditional update) before claiming, so a concurrent verb loses.
    INSTANCE_LIFECYCLE.begin(instance, "resize")
    scheduler.resize_allocation(instance, **held)  # NoValidHost rolls everything back
    Instance.objects.filter(pk=instance.pk).update(
        flavor=flavor, previous_flavor=instance.flavor, **held
    )
    instance.refresh_from_db()
    return queue_operation(
        actor=actor,
        instance=instance,
        action="instance.resize",
        params={"old": old, "new": new, "was_active": was_active},
    )


@transaction.atomic
def instance_confirm_resize(*, actor: Actor, instance: Instance) -> Instance:
    """Keep the new flavor: release the old capacity (the Allocation and host usage become
    the new size) and return to active (stopped if the guest is not running)."""
    INSTANCE_LIFECYCLE.begin(instance, "confirm_resize")  # done before this transaction ends
    new = _size(instance.flavor)
    scheduler.resize_allocation(instance, **new)  # shrinks or keeps: always fits
    status = (
        Instance.Status.ACTIVE if instance.power_state == "running" else Instance.Status.STOPPED
    )
    Instance.objects.filter(pk=instance.pk).update(
        status=status, task_state=None, previous_flavor=None, **new
    )
    audit_record(
        actor=actor,
        action="instance.confirm_resize",
        tenant_id=instance.tenant_id,
        target=instance,
        details={"flavor": instance.flavor.name, **new},
    )
    instance.refresh_from_db()
    return instance


@transaction.atomic
def instance_revert_resize(*, actor: Actor, instance: Instance) -> Operation:
    """Go back to the old flavor: an operation redefines the domain with the old vCPUs and
    memory (the disk stays grown, and counted); the capacity returns to the old size when it
    succeeds."""
    INSTANCE_LIFECYCLE.begin(instance, "revert_resize")
    assert instance.previous_flavor is not None  # set with verify_resize, cleared with it
    old = {"flavor": instance.previous_flavor.name, **_size(instance.previous_flavor)}
    new = {"flavor": instance.flavor.name, **_size(instance.flavor)}
    return queue_operation(
        actor=actor,
        instance=instance,
        action="instance.revert_resize",
        params={"old": old, "new": new, "was_active": instance.power_state == "running"},
    )
