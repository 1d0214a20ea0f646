"""Creating and deleting instances (DESIGN §2). The API transaction decides everything —
quota, placement, address — and records an operation; a worker on the host's queue carries
it out (compute.services.worker)."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import transaction

from compute.models import Flavor, Image, Instance, KeyPair, Operation, ServerGroup
from compute.services import ipam, scheduler
from compute.services.images import image_create
from compute.services.operations import operation_create
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from tenants.models import Tenant
from tenants.quotas import quota_enforce

logger = logging.getLogger(__name__)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
MAX_USER_DATA_BYTES = 16 * 1024


def _check_bootable(image: Any, *, disk_gb: int, memory_mb: int, sized_by: str) -> None:
    """409 `image_not_active` unless the image is active; 400 `flavor_too_small` unless
    `disk_gb` and `memory_mb` (those of `sized_by`) meet the image's minimums."""
    if image.status != "active":
        raise ConflictError("This image is not active yet.", code="image_not_active")
    if image.min_disk_gb > disk_gb or image.min_ram_mb > memory_mb:
        raise InvalidRequest(
            f"Image {image.name} needs at least {image.min_disk_gb} GiB of disk and "
            f"{image.min_ram_mb} MiB of RAM; {sized_by} is too small.",
            code="flavor_too_small",
        )


def _check(
    tenant: Tenant, name: str, flavor: Flavor, image: Any, keypair: KeyPair | None, user_data: str
) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            "An instance name is 1 to 63 letters, digits, '.' and '-' (it becomes the hostname).",
            details={"name": name[:80]},
        )
    if len(user_data.encode()) > MAX_USER_DATA_BYTES:
        raise InvalidRequest(
            f"user_data is at most {MAX_USER_DATA_BYTES} bytes.", code="user_data_too_large"
        )
    _check_bootable(image, disk_gb=flavor.disk_gb, memory_mb=flavor.memory_mb,
                    sized_by=f"flavor {flavor.name}")  # fmt: skip
    if keypair is not None and keypair.tenant_id != tenant.pk:  # selectors already ensure it
        raise InvalidRequest("No such keypair.", code="unknown_keypair")


@transaction.atomic
def instance_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    flavor: Flavor,
    image: Any,
    keypair: KeyPair | None = None,
    user_data: str = "",
    zone: str | None = None,
    server_group: ServerGroup | None = None,
) -> tuple[Instance, Operation]:
    """Accept a new instance: quota, placement and address are claimed here, under locks;
    the build itself is an operation on the chosen host's queue."""
    _check(tenant, name, flavor, image, keypair, user_data)
    if server_group is not None and server_group.tenant_id != tenant.pk:  # selectors ensure it
        raise InvalidRequest("No such server group.", code="unknown_server_group")
    for resource, amount in (
        ("instances", 1),
        ("vcpus", flavor.vcpus),
        ("ram_mb", flavor.memory_mb),
        ("disk_gb", flavor.disk_gb),
    ):
        quota_enforce(tenant, resource, amount)
    instance = Instance.objects.create(
        tenant=tenant,
        name=name,
        flavor=flavor,
        image_id=image.pk,
        keypair=keypair,
        ssh_public_key=keypair.public_key if keypair else "",
        user_data=user_data,
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        disk_gb=flavor.disk_gb,
        status=Instance.Status.BUILDING,
        task_state="spawning",
        server_group=server_group,
    )
    request = scheduler.PlacementRequest(
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        disk_gb=flavor.disk_gb,
        jurisdictions=tuple(tenant.residency),
        zone=zone,
        server_group_id=server_group.pk if server_group else None,
    )
    host = scheduler.claim(instance, request)
    instance.host = host
    instance.save(update_fields=["host"])
    port = ipam.allocate_port(instance, ipam.tenant_network(tenant))
    operation = operation_create(
        actor=actor,
        tenant=tenant,
        action="instance.create",
        target_type="instance",
        target_id=instance.pk,
        host_name=host.name,
    )
    audit_record(
        actor=actor,
        action="instance.create",
        tenant_id=tenant.pk,
        target=instance,
        details={
            "flavor": flavor.name,
            "image": str(image.pk),
            "host": host.name,
            "zone": host.zone.name,
            "jurisdiction": host.zone.jurisdiction,
            "ip": port.ip,
            "operation": str(operation.pk),
            "server_group": server_group.name if server_group else None,
        },
    )
    return instance, operation


_DELETABLE = {
    Instance.Status.ACTIVE,
    Instance.Status.STOPPED,
    Instance.Status.ERROR,
    Instance.Status.VERIFY_RESIZE,  # a pending resize: deleting releases the larger claim
}


@transaction.atomic
def instance_delete(*, actor: Actor, instance: Instance) -> Operation:
    """Accept a delete: the instance goes `deleting` (409 if another verb runs), and an
    operation removes the domain, wipes the disks and releases capacity and address."""
    taken = Instance.objects.filter(
        pk=instance.pk, task_state__isnull=True, status__in=_DELETABLE
    ).update(status=Instance.Status.DELETING, task_state="deleting")
    if not taken:
        raise wrong_state(instance, "be deleted", "active, stopped, in error or verifying a resize")
    instance.refresh_from_db()
    return queue_operation(actor=actor, instance=instance, action="instance.delete", params={})


# --- Lifecycle verbs (start, stop, reboot) ----------------------------------------------------

_VERB_FROM = {
    "start": ({Instance.Status.STOPPED}, "starting", "stopped"),
    "stop": ({Instance.Status.ACTIVE}, "stopping", "active"),
    "reboot": ({Instance.Status.ACTIVE}, "rebooting", "active"),
    "rebuild": (
        {Instance.Status.ACTIVE, Instance.Status.STOPPED},
        "rebuilding",
        "active or stopped",
    ),
    "snapshot": (
        {Instance.Status.ACTIVE, Instance.Status.STOPPED},
        "snapshotting",
        "active or stopped",
    ),
}
REBOOT_TYPES = ("soft", "hard")


def wrong_state(instance: Instance, verb: str, needs: str) -> ConflictError:
    """The 409 for a verb refused by the instance's state (re-read to say what it is)."""
    instance.refresh_from_db()
    return ConflictError(
        f"The instance is {instance.status}"
        + (f" ({instance.task_state})" if instance.task_state else "")
        + f"; it can {verb} only when it is {needs} and no other operation runs.",
        code="wrong_state",
        details={"status": instance.status, "task_state": instance.task_state},
    )


def queue_operation(
    *, actor: Actor, instance: Instance, action: str, params: dict[str, Any]
) -> Operation:
    """Record the operation for `action` on the instance's host, and its audit event, in
    the caller's transaction."""
    assert instance.host is not None
    operation = operation_create(
        actor=actor,
        tenant=instance.tenant,
        action=action,
        target_type="instance",
        target_id=instance.pk,
        host_name=instance.host.name,
        params=params,
    )
    audit_record(
        actor=actor,
        action=action,
        tenant_id=instance.tenant_id,
        target=instance,
        details={"operation": str(operation.pk), **params},
    )
    return operation


def _claim_task(instance: Instance, verb: str) -> None:
    """Take the instance for `verb` by a conditional update on its idle task state and
    allowed status (so two concurrent verbs cannot both win); `instance` is re-read."""
    allowed, task_state, needs = _VERB_FROM[verb]
    taken = Instance.objects.filter(
        pk=instance.pk, task_state__isnull=True, status__in=allowed
    ).update(task_state=task_state)
    if not taken:
        raise wrong_state(instance, verb, needs)
    instance.refresh_from_db()


def _take(*, actor: Actor, instance: Instance, verb: str, params: dict[str, Any]) -> Operation:
    """Take the instance for `verb` (`_claim_task`), then queue the operation."""
    _claim_task(instance, verb)
    return queue_operation(actor=actor, instance=instance, action=f"instance.{verb}", params=params)


@transaction.atomic
def instance_start(*, actor: Actor, instance: Instance) -> Operation:
    """Accept a start: only from stopped (409 `wrong_state` otherwise)."""
    return _take(actor=actor, instance=instance, verb="start", params={})


@transaction.atomic
def instance_stop(*, actor: Actor, instance: Instance) -> Operation:
    """Accept a stop: only from active. The worker asks the guest to power off and forces
    it off after settings.INSTANCE_STOP_TIMEOUT_SECONDS."""
    return _take(actor=actor, instance=instance, verb="stop", params={})


@transaction.atomic
def instance_reboot(*, actor: Actor, instance: Instance, reboot_type: str = "soft") -> Operation:
    """Accept a reboot: only from active. Soft asks the guest (ACPI); hard resets it."""
    if reboot_type not in REBOOT_TYPES:
        raise InvalidRequest("A reboot is 'soft' or 'hard'.", details={"type": reboot_type[:20]})
    return _take(actor=actor, instance=instance, verb="reboot", params={"type": reboot_type})


@transaction.atomic
def instance_rebuild(*, actor: Actor, instance: Instance, image: Any) -> Operation:
    """Accept a rebuild from `image` (one the tenant may boot; the view selects it): only
    from active or stopped. The worker replaces the root disk by a fresh overlay on the
    image; the instance keeps its id, name, flavor, address and MAC."""
    _check_bootable(image, disk_gb=instance.disk_gb, memory_mb=instance.memory_mb,
                    sized_by="this instance's flavor")  # fmt: skip
    return _take(actor=actor, instance=instance, verb="rebuild", params={"image": str(image.pk)})


@transaction.atomic
def instance_snapshot(*, actor: Actor, instance: Instance, name: str) -> tuple[Any, Operation]:
    """Accept a snapshot: a new private image `name` of the tenant (`saving`, counted in its
    `images` quota) that a worker fills with a standalone copy of the root disk. Only from
    active or stopped. A running guest is powered off cleanly for the copy (ACPI, forced
    after the stop deadline) and booted again, so the image holds a consistent file system;
    the instance keeps its id, address and disks."""
    _claim_task(instance, "snapshot")
    source = Image.objects.filter(pk=instance.image_id).only("min_ram_mb").first()
    image = image_create(
        actor=actor,
        tenant=instance.tenant,
        name=name,
        disk_format=Image.DiskFormat.QCOW2,
        min_disk_gb=instance.disk_gb,  # the copy's virtual size: a smaller disk cannot hold it
        min_ram_mb=source.min_ram_mb if source is not None else 0,
        source_instance_id=instance.pk,
    )
    params = {"image": str(image.pk), "was_active": instance.status == Instance.Status.ACTIVE}
    operation = queue_operation(
        actor=actor, instance=instance, action="instance.snapshot", params=params
    )
    return image, operation


def instance_console(instance: Instance) -> str:
    """The tail of the serial console; empty before the first boot or when the host cannot
    say (the error is logged, the tenant sees an empty console, never a 500)."""
    from compute.hypervisors import hypervisor_for
    from hypervisor.base import DriverError

    if instance.host is None or instance.status not in _DELETABLE:
        return ""
    try:
        return hypervisor_for(instance.host).console_output(str(instance.pk))
    except DriverError as exc:
        logger.warning("console of %s unavailable: %s", instance.pk, exc)
        return ""
