"""Creating and deleting instances (DESIGN §2). The API transaction decides everything —
quota, placement, address — and records an operation; a worker on the host's queue carries
it out (compute.worker)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from compute.models import Flavor, Instance, KeyPair, ServerGroup
from compute.services import scheduler
from compute.states import INSTANCE_LIFECYCLE
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from images.models import Image
from images.services.images import image_create
from network.selectors import first_address
from network.services import devices
from network.services.devices import NicRequest
from operations.models import Operation
from operations.services.outbox import operation_create, operation_queue
from tenants.models import Tenant
from tenants.quotas import quota_enforce_many
from volumes.models import Volume, VolumeType
from volumes.selectors import boot_attachment
from volumes.services.attachments import volume_boot_attach
from volumes.services.volumes import volume_create

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
MAX_USER_DATA_BYTES = 16 * 1024
GIB = 1024**3


def refuse_image_larger_than(image: Image, *, disk_gb: int, sized_by: str) -> None:
    """400 `flavor_disk_smaller_than_image` when the image's virtual size exceeds `disk_gb`
    (that of `sized_by`): a root disk is exactly its flavor's size, so such an image would
    not fit, and a disk sized by the image would escape quota and placement (the uploader
    chooses a qcow2's virtual size for free)."""
    virtual = image.virtual_size_bytes or 0
    if virtual > disk_gb * GIB:
        raise InvalidRequest(
            f"Image {image.name} is a {math.ceil(virtual / GIB)} GiB disk; {sized_by} has "
            f"{disk_gb} GiB.",
            code="flavor_disk_smaller_than_image",
            details={"image_virtual_size_bytes": virtual, "flavor_disk_gb": disk_gb},
        )


def _check_bootable(image: Image, *, disk_gb: int, memory_mb: int, sized_by: str) -> None:
    """409 `image_not_active` unless the image is active; 400
    `flavor_disk_smaller_than_image` unless its virtual size fits in `disk_gb`; 400
    `flavor_too_small` unless `disk_gb` and `memory_mb` (those of `sized_by`) meet the
    image's minimums."""
    if image.status != "active":
        raise ConflictError("This image is not active yet.", code="image_not_active")
    refuse_image_larger_than(image, disk_gb=disk_gb, sized_by=sized_by)
    if image.min_disk_gb > disk_gb or image.min_ram_mb > memory_mb:
        raise InvalidRequest(
            f"Image {image.name} needs at least {image.min_disk_gb} GiB of disk and "
            f"{image.min_ram_mb} MiB of RAM; {sized_by} is too small.",
            code="flavor_too_small",
        )


@dataclass(frozen=True)
class BootVolume:
    """An instance's root disk as a volume (issue 11 item 4; Nova's block_device_mapping_v2
    with boot_index 0, made simpler): a new volume of `size_gb` GiB of `volume_type` copied
    from the instance's image, or the tenant's existing `volume` (available, made from an
    image, on a host the instance can be placed on: it is placed there). Either way it is
    attached as ``vda``; `delete_on_termination` says whether deleting the instance deletes
    it (erased) or keeps it (`available`)."""

    volume_type: VolumeType | None = None
    size_gb: int = 0
    volume: Volume | None = None
    delete_on_termination: bool = False


def refuse_boot_from_volume(instance: Instance, verb: str) -> None:
    """409 `boot_from_volume` for a verb that replaces or copies the root disk in the
    instances pool (rebuild, resize, snapshot to an image): a boot volume is snapshotted as
    a volume (POST /volume-snapshots)."""
    if boot_attachment(instance.pk) is not None:
        raise ConflictError(
            f"This instance boots from a volume; it cannot {verb} (snapshot its volume instead).",
            code="boot_from_volume",
        )


def _check(
    tenant: Tenant,
    name: str,
    flavor: Flavor,
    image: Image,
    keypair: KeyPair | None,
    user_data: str,
    *,
    root: BootVolume | None = None,
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
    if root is None:
        _check_bootable(image, disk_gb=flavor.disk_gb, memory_mb=flavor.memory_mb,
                        sized_by=f"flavor {flavor.name}")  # fmt: skip
    elif root.volume is None:  # a new volume from the image: its size is the disk
        _check_bootable(image, disk_gb=root.size_gb, memory_mb=flavor.memory_mb,
                        sized_by="the boot volume")  # fmt: skip
    if keypair is not None and keypair.tenant_id != tenant.pk:  # selectors already ensure it
        raise InvalidRequest("No such keypair.", code="unknown_keypair")


@transaction.atomic
def instance_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    flavor: Flavor,
    image: Image,
    keypair: KeyPair | None = None,
    user_data: str = "",
    zone: str | None = None,
    server_group: ServerGroup | None = None,
    nics: NicRequest | None = None,
    boot_volume: BootVolume | None = None,
) -> tuple[Instance, Operation]:
    """Accept a new instance: quota, placement and addresses are claimed here, under locks
    (its ports: `nics`, or one on the tenant's default network); the build itself is an
    operation on the chosen host's queue. With `boot_volume` its root disk is a volume
    (see BootVolume): no local disk is claimed (`disk_gb` 0), the volume counts in the
    `volumes` and `volume_gb` quotas; `image` is the volume's (an existing volume's
    `source_image`)."""
    _check(tenant, name, flavor, image, keypair, user_data, root=boot_volume)
    if server_group is not None and server_group.tenant_id != tenant.pk:  # selectors ensure it
        raise InvalidRequest("No such server group.", code="unknown_server_group")
    disk_gb = 0 if boot_volume is not None else flavor.disk_gb
    quota_enforce_many(
        tenant,
        {"instances": 1, "vcpus": flavor.vcpus, "ram_mb": flavor.memory_mb, "disk_gb": disk_gb},
    )
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
        disk_gb=disk_gb,
        status=Instance.Status.BUILDING,
        task_state="spawning",
        server_group=server_group,
    )
    existing = boot_volume.volume if boot_volume is not None else None
    request = scheduler.PlacementRequest(
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        disk_gb=disk_gb,
        jurisdictions=tuple(tenant.residency),
        zone=zone,
        server_group_id=server_group.pk if server_group else None,
        host_id=existing.host_id if existing is not None else None,
    )
    host = scheduler.claim(instance, request)
    instance.host = host
    instance.save(update_fields=["host"])
    root = _boot_volume(actor, instance, image, boot_volume) if boot_volume else None
    nics = nics or NicRequest()
    ports = devices.device_ports_create(
        actor=actor,
        tenant=tenant,
        device_id=instance.pk,
        binding_host=host.name,
        networks=nics.networks,
        ports=nics.ports,
        security_groups=nics.security_groups,
    )
    address = first_address(ports[0])
    operation = operation_create(
        actor=actor,
        tenant=tenant,
        action="instance.create",
        target_id=instance.pk,
        host_name=host.name,
        params={"image": str(image.pk), "boot_volume": str(root.pk) if root else None},
    )
    audit_record(
        actor=actor,
        action="instance.create",
        tenant_id=tenant.pk,
        target=instance,
        details={
            "flavor": flavor.name,
            "image": str(image.pk),
            "zone": host.zone.name,
            "jurisdiction": host.zone.jurisdiction,
            "ip": address.ip if address else None,
            "operation": str(operation.pk),
            "server_group": server_group.name if server_group else None,
            "boot_volume": str(root.pk) if root else None,
        },
    )
    return instance, operation


def _boot_volume(actor: Actor, instance: Instance, image: Image, boot: BootVolume) -> Volume:
    """The instance's boot volume, attached as vda on its host: a new one copied from
    `image` there (its create operation queued; it ends `in-use`), or the existing one
    (`attaching`; 409 `volume_in_use`/`wrong_state` as for any attach)."""
    assert instance.host is not None
    volume = boot.volume
    if volume is None:
        assert boot.volume_type is not None
        volume, _operation = volume_create(
            actor=actor, tenant=instance.tenant, name=f"{instance.name}-root"[:64],
            size_gb=boot.size_gb, volume_type=boot.volume_type, image=image,
            host=instance.host,
        )  # fmt: skip
    volume_boot_attach(
        volume=volume, instance_id=instance.pk, host=instance.host,
        delete_on_termination=boot.delete_on_termination,
    )  # fmt: skip
    return volume


@transaction.atomic
def instance_delete(*, actor: Actor, instance: Instance) -> Operation:
    """Accept a delete: the instance goes `deleting` (409 if another verb runs), and an
    operation removes the domain, wipes the disks and releases capacity and address."""
    INSTANCE_LIFECYCLE.begin(instance, "delete")
    return queue_operation(actor=actor, instance=instance, action="instance.delete", params={})


REBOOT_TYPES = ("soft", "hard")


def queue_operation(
    *, actor: Actor, instance: Instance, action: str, params: dict[str, Any]
) -> Operation:
    """Record the operation for `action` on the instance's host, and its audit event, in
    the caller's transaction."""
    assert instance.host is not None
    return operation_queue(
        actor=actor,
        tenant=instance.tenant,
        target=instance,
        action=action,
        host_name=instance.host.name,
        params=params,
    )


def _take(*, actor: Actor, instance: Instance, verb: str, params: dict[str, Any]) -> Operation:
    """Take the instance for `verb` (the lifecycle's guard), then queue the operation."""
    INSTANCE_LIFECYCLE.begin(instance, verb)
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
def instance_rebuild(*, actor: Actor, instance: Instance, image: Image) -> Operation:
    """Accept a rebuild from `image` (one the tenant may boot; the view selects it): only
    from active or stopped. The worker replaces the root disk by a fresh overlay on the
    image; the instance keeps its id, name, flavor, address and MAC."""
    refuse_boot_from_volume(instance, "be rebuilt")
    _check_bootable(image, disk_gb=instance.disk_gb, memory_mb=instance.memory_mb,
                    sized_by="this instance's flavor")  # fmt: skip
    return _take(actor=actor, instance=instance, verb="rebuild", params={"image": str(image.pk)})


@transaction.atomic
def instance_snapshot(*, actor: Actor, instance: Instance, name: str) -> tuple[Image, Operation]:
    """Accept a snapshot: a new private image `name` of the tenant (`saving`, counted in its
    `images` quota) that a worker fills with a standalone copy of the root disk. Only from
    active or stopped. A running guest is powered off cleanly for the copy (ACPI, forced
    after the stop deadline) and booted again, so the image holds a consistent file system;
    the instance keeps its id, address and disks."""
    refuse_boot_from_volume(instance, "be snapshotted to an image")
    INSTANCE_LIFECYCLE.begin(instance, "snapshot")
    source = Image.objects.filter(pk=instance.image_id).only("min_ram_mb").first()
    image = image_create(
        actor=actor,
        tenant=instance.tenant,
        name=name,
        disk_format=Image.DiskFormat.QCOW2,
        min_disk_gb=instance.disk_gb,  # the copy's virtual size: a smaller disk cannot hold it
        min_ram_mb=source.min_ram_mb if source is not None else 0,
        source_instance_id=instance.pk,
        near=instance.host.zone if instance.host else None,  # the copy stays in its zone
    )
    params = {"image": str(image.pk), "was_active": instance.status == Instance.Status.ACTIVE}
    operation = queue_operation(
        actor=actor, instance=instance, action="instance.snapshot", params=params
    )
    return image, operation


def image_build_in_progress(image: Image) -> str | None:
    """Why `image` cannot be deleted now (images.usage): an instance is being built or
    rebuilt from it, and its worker still has to copy the file to the host. Instances
    already running keep working after the delete (their host holds a cached copy, removed
    by the reconciler once no instance there uses it). A delete racing a create that has
    not committed yet is not caught here: that build then fails cleanly, with a fault
    saying the file is gone."""
    building = Instance.objects.filter(image_id=image.pk, status=Instance.Status.BUILDING)
    rebuilding = Operation.objects.filter(
        action="instance.rebuild",
        status__in=[Operation.Status.QUEUED, Operation.Status.RUNNING],
        params__image=str(image.pk),
    )
    if building.exists() or rebuilding.exists():
        return "An instance is being built from this image; delete it once the build ends."
    return None
