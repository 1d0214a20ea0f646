"""The storage side of attaching volumes to instances (DESIGN §1, §8), for the compute app:
a volume is taken for an instance it knows by id only, and given back. Compute decides about
the instance (its state, its devices) and runs the operation; these functions decide about
the volume, under its row lock, in compute's transaction.

The volume's status says where an attachment stands: `attaching` (the row exists, the
worker plugs the disk in), `in-use` (plugged in), `detaching` (the worker takes it out),
then `available` again with the attachment's `detached_at` set. A failure never leaves a
half-state: an attach that failed and was undone gives the volume back `available`; one
whose undo failed, or a detach the guest refused, keeps it `in-use` with a fault (it may be
plugged in: only a detach may free it)."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from hosts.models import Host
from iaas.errors import ConflictError
from volumes.models import Volume, VolumeAttachment, VolumeType
from volumes.selectors import active_attachment
from volumes.services.snapshots import refuse_while_snapshotting
from volumes.services.volumes import check_key_not_shredded
from volumes.states import VOLUME_LIFECYCLE, VolumeStatus

#: Backends whose volumes every host of their zone reaches: Ceph RBD.
SHARED_BACKENDS: frozenset[str] = frozenset({VolumeType.Backend.RBD})
_BUSY = (VolumeStatus.ATTACHING, VolumeStatus.IN_USE, VolumeStatus.DETACHING)


def _locked(volume: Volume) -> Volume:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("volume attachments change inside the caller's transaction")
    return Volume.objects.select_for_update().select_related("volume_type").get(pk=volume.pk)


def volume_attachment_begin(
    *, volume: Volume, instance_id: uuid.UUID, host: Host, device: str
) -> VolumeAttachment:
    """Take an `available` volume for the instance `instance_id` on `host` as `device`:
    it goes `attaching` and its attachment row is made. 409 `volume_in_use` when it is
    attached (or being attached or detached), 409 `wrong_state` in another status, 409
    `volume_on_other_host` when its storage is on another host than the instance and its
    backend is not shared (a shared one: in another zone), 409 `volume_key_shredded` when
    its encryption key was destroyed."""
    volume = _locked(volume)
    if volume.status in _BUSY:
        attached = active_attachment(volume.pk)
        raise ConflictError(
            "This volume is attached to an instance; detach it first.",
            code="volume_in_use",
            details={
                "status": volume.status,
                "instance": str(attached.instance_id) if attached else None,
            },
        )
    VOLUME_LIFECYCLE.check(volume, "attach")
    refuse_while_snapshotting(volume, "be attached")
    check_key_not_shredded(volume)
    shared = volume.volume_type.backend in SHARED_BACKENDS
    if shared and volume.zone_id != host.zone_id:
        raise ConflictError(
            f"This volume is stored in zone {volume.zone.name}, and the instance runs in "
            f"another one: its hosts do not reach this volume's storage.",
            code="volume_on_other_host",
            details={"zone": volume.zone.name},
        )
    if not shared and volume.host_id != host.pk:
        raise ConflictError(
            "This volume is stored on another host than the instance, and its volume type "
            f"({volume.volume_type.name}, backend {volume.volume_type.backend}) is not shared "
            "between hosts: attach it to an instance on its host.",
            code="volume_on_other_host",
            details={"volume_type": volume.volume_type.name,
                     "backend": VolumeType.Backend(volume.volume_type.backend).value},
        )  # fmt: skip
    VOLUME_LIFECYCLE.begin(volume, "attach")
    try:
        with transaction.atomic():  # a savepoint: the constraint's refusal is a clean 409
            return VolumeAttachment.objects.create(
                volume=volume, instance_id=instance_id, host=host, device=device
            )
    except IntegrityError:
        raise ConflictError(
            "This volume or this device is already attached.", code="volume_in_use"
        ) from None


#: The device of an instance's boot volume: its root disk, which it boots from.
BOOT_DEVICE = "vda"


def volume_boot_attach(
    *, volume: Volume, instance_id: uuid.UUID, host: Host, delete_on_termination: bool
) -> VolumeAttachment:
    """Take `volume` as the boot volume (``vda``) of the instance being created. A volume
    created in this transaction for it (`creating`) gets its attachment at once: its create
    ends `in-use`. An existing one must be `available` on `host` and goes `attaching`, as by
    `volume_attachment_begin`, until the build confirms it."""
    locked = _locked(volume)
    if locked.status == VolumeStatus.CREATING:
        return VolumeAttachment.objects.create(
            volume=locked, instance_id=instance_id, host=host, device=BOOT_DEVICE,
            delete_on_termination=delete_on_termination,
        )  # fmt: skip
    attachment = volume_attachment_begin(
        volume=locked, instance_id=instance_id, host=host, device=BOOT_DEVICE
    )
    if delete_on_termination:
        attachment.delete_on_termination = True
        attachment.save(update_fields=["delete_on_termination"])
    return attachment


def volume_attachment_confirm(attachment: VolumeAttachment) -> None:
    """The disk is plugged in: the volume is `in-use`, its fault cleared."""
    _settle(attachment.volume_id, VolumeStatus.IN_USE, "")


def volume_detach_begin(*, volume: Volume, instance_id: uuid.UUID) -> VolumeAttachment:
    """Take the volume attached to `instance_id` for a detach: it goes `detaching`. 409
    `volume_not_attached` if it is not attached to that instance, `wrong_state` while it
    is being attached, detached or extended, `snapshot_in_progress` while it is being
    snapshotted (the backup job reads the attached disk)."""
    volume = _locked(volume)
    attachment = active_attachment(volume.pk)
    if attachment is None or attachment.instance_id != instance_id:
        raise ConflictError(
            "This volume is not attached to this instance.",
            code="volume_not_attached",
            details={"status": volume.status},
        )
    if attachment.device == BOOT_DEVICE:
        raise ConflictError(
            "This volume is the instance's boot disk: it leaves with the instance (delete "
            "the instance; the volume is kept unless it was to be deleted with it).",
            code="boot_volume",
        )
    refuse_while_snapshotting(volume, "be detached")
    VOLUME_LIFECYCLE.begin(volume, "detach")
    return attachment


def volume_attachment_end(attachment: VolumeAttachment, *, fault: str = "") -> None:
    """The disk is out of the instance (or the instance is gone): the attachment ends and
    the volume is `available`, with `fault` (empty: cleared)."""
    VolumeAttachment.objects.filter(pk=attachment.pk, detached_at__isnull=True).update(
        detached_at=timezone.now()
    )
    _settle(attachment.volume_id, VolumeStatus.AVAILABLE, fault)


def volume_attachment_keep(attachment: VolumeAttachment, fault: str) -> None:
    """The disk may still be plugged in (a refused detach, an attach whose undo failed, an
    abandoned operation): the volume stays (or goes back) `in-use`, attached, with `fault`
    telling the tenant to detach it."""
    _settle(attachment.volume_id, VolumeStatus.IN_USE, fault)


def volume_attachments_release(instance_id: uuid.UUID) -> list[uuid.UUID]:
    """The instance is gone (its domain undefined): each of its attachments ends and its
    volumes are `available` again. Returns their ids."""
    released = []
    for attachment in VolumeAttachment.objects.filter(
        instance_id=instance_id, detached_at__isnull=True
    ).select_for_update():
        volume_attachment_end(attachment)
        released.append(attachment.volume_id)
    return released


def _settle(volume_id: uuid.UUID, status: str, fault: str) -> None:
    """The attachment's outcome on the volume. One being extended keeps `extending`: the
    extend's worker settles it, in-use or available as its attachment is then."""
    Volume.objects.filter(pk=volume_id).exclude(status=VolumeStatus.EXTENDING).update(
        status=status, fault=fault[:2000], updated_at=timezone.now()
    )


def volume_attachments_move(instance_id: uuid.UUID, host: Host) -> int:
    """The instance's active attachments now plug into `host` (it was cold-migrated there;
    only attachments of shared, rbd volumes can move: compute refuses the others). Returns
    how many moved."""
    return VolumeAttachment.objects.filter(
        instance_id=instance_id, detached_at__isnull=True, volume__ceph_cluster__isnull=False
    ).update(host=host)
