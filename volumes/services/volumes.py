"""Creating, renaming, extending and deleting volumes (DESIGN §2, §8). The API transaction
decides everything — quota, placement — and records an operation; a worker on the volume's
host carries it out (volumes.worker)."""

from __future__ import annotations

import logging
import math

from django.db import transaction

from hosts.models import Host
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from images.models import Image
from images.services.stores import ResidencyUnsatisfiable
from network.services.names import check_description, check_name
from operations.models import Operation
from operations.services.outbox import operation_create, operation_queue
from tenants.models import Tenant
from tenants.quotas import quota_enforce_many
from volumes.crypto import VolumeKeyError, volume_key_assign
from volumes.models import Volume, VolumeSnapshot, VolumeType
from volumes.selectors import active_attachment
from volumes.services.placement import (
    NoValidHost,
    ceph_cluster_choose,
    ceph_worker_host,
    volume_host_choose,
)
from volumes.services.snapshots import refuse_while_snapshotting
from volumes.states import VOLUME_LIFECYCLE, VolumeSnapshotStatus, VolumeStatus

GIB = 1024**3
logger = logging.getLogger(__name__)


def _check_type(volume_type: VolumeType, size_gb: int) -> None:
    """400 `not_supported_yet` for a type whose backend is not built yet; 400
    `volume_too_large` past the type's maximum."""
    if volume_type.backend not in VolumeType.Backend.values:
        raise InvalidRequest(
            f"Volume type {volume_type.name} is stored on {volume_type.backend}, which is not "
            "supported yet.",
            code="not_supported_yet",
            details={"volume_type": volume_type.name, "backend": volume_type.backend},
        )
    if not 1 <= size_gb <= volume_type.max_size_gb:
        raise InvalidRequest(
            f"A volume of type {volume_type.name} is 1 to {volume_type.max_size_gb} GiB.",
            code="invalid_size" if size_gb < 1 else "volume_too_large",
            details={"size_gb": size_gb, "max_size_gb": volume_type.max_size_gb},
        )


def _check_image(image: Image, size_gb: int) -> None:
    """409 `image_not_active` unless the image has its file; 400
    `volume_smaller_than_image` when its virtual size (or its minimum disk) exceeds
    `size_gb`: the copy would not fit, and a volume sized by the image would escape the
    `volume_gb` quota."""
    if image.status != Image.Status.ACTIVE:
        raise ConflictError("This image is not active yet.", code="image_not_active")
    virtual = image.virtual_size_bytes or 0
    needed_gb = max(math.ceil(virtual / GIB), image.min_disk_gb)
    if needed_gb > size_gb:
        raise InvalidRequest(
            f"Image {image.name} needs a volume of at least {needed_gb} GiB; {size_gb} GiB "
            "was asked for.",
            code="volume_smaller_than_image",
            details={"image_virtual_size_bytes": virtual, "min_disk_gb": image.min_disk_gb,
                     "size_gb": size_gb},
        )  # fmt: skip


def _snapshot_host(tenant: Tenant, snapshot: VolumeSnapshot, size_gb: int) -> Host:
    """Where a volume copied from `snapshot` goes: the snapshot's host (its file is there; a
    directory pool is not shared). 409 `snapshot_not_available` unless the snapshot is
    `available`; 400 `volume_smaller_than_snapshot` under its size; 409
    `residency_unsatisfiable` if the tenant's policy no longer allows its zone; 409
    `no_valid_host` if its host is not enabled."""
    if snapshot.status != VolumeSnapshotStatus.AVAILABLE:
        raise ConflictError(
            f"The snapshot is {snapshot.status}; volumes are made only from available ones.",
            code="snapshot_not_available",
            details={"status": snapshot.status},
        )
    if size_gb < snapshot.size_gb:
        raise InvalidRequest(
            f"The snapshot holds {snapshot.size_gb} GiB; {size_gb} GiB was asked for.",
            code="volume_smaller_than_snapshot",
            details={"snapshot_size_gb": snapshot.size_gb, "size_gb": size_gb},
        )
    host = snapshot.host
    if host is None or snapshot.zone.jurisdiction not in tuple(tenant.residency):
        raise ResidencyUnsatisfiable(
            "The snapshot lies in a zone your residency policy no longer allows.",
            details={"residency": list(tenant.residency), "zone": snapshot.zone.name},
        )
    if host.state != Host.State.ENABLED:
        raise NoValidHost(
            "The snapshot's host takes no new volumes now; try again later.",
            details={"size_gb": size_gb, "zone": snapshot.zone.name},
        )
    return host


@transaction.atomic
def volume_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    size_gb: int,
    volume_type: VolumeType,
    description: str = "",
    image: Image | None = None,
    snapshot: VolumeSnapshot | None = None,
    zone: str | None = None,
    host: Host | None = None,
) -> tuple[Volume, Operation]:
    """Accept a new volume (`creating`): empty, or a standalone copy of `image` (one the
    tenant may read; the view selects it) or of the tenant's volume `snapshot` (on the
    snapshot's host, see `_snapshot_host`). Counted in the `volumes` and `volume_gb` quotas,
    placed on a host of an allowed zone (volumes.services.placement); a worker on that host
    makes its storage. `host` (an instance's boot volume, made where the instance was
    placed) bypasses the choice."""
    check_name("volume", name)
    check_description(description)
    _check_type(volume_type, size_gb)
    if image is not None and snapshot is not None:
        raise InvalidRequest("A volume is made from an image or a snapshot, not both.")
    if image is not None:
        _check_image(image, size_gb)
        if volume_type.encrypted:
            raise InvalidRequest(
                f"Volume type {volume_type.name} is encrypted; an encrypted volume cannot be "
                "made from an image yet: create it empty.",
                code="not_supported_yet",
                details={"volume_type": volume_type.name, "image": str(image.pk)},
            )
    rbd = volume_type.backend == VolumeType.Backend.RBD
    if rbd and (snapshot is not None or host is not None):
        # RBD snapshots and clones, and a domain booting from a network disk, are not built.
        raise InvalidRequest(
            f"Volume type {volume_type.name} is stored on Ceph (rbd): volumes of it are made "
            "empty or from an image, and are not boot volumes yet.",
            code="not_supported_yet",
            details={"volume_type": volume_type.name, "backend": volume_type.backend},
        )
    if snapshot is not None:
        if volume_type.encrypted or snapshot.volume.volume_type.encrypted:
            # A snapshot is a copy of the file, sealed with its volume's data key: a volume
            # made from it would need that key, and a new volume gets its own (not built).
            raise InvalidRequest(
                "Encrypted volumes and their snapshots cannot be copied into a volume yet.",
                code="not_supported_yet",
                details={"volume_type": volume_type.name, "snapshot": str(snapshot.pk)},
            )
        # Locked: a snapshot delete accepted now would erase the file the copy reads.
        snapshot = (
            VolumeSnapshot.objects.select_for_update(of=("self",))
            .select_related("host", "zone", "volume")
            .get(pk=snapshot.pk)
        )
        host = _snapshot_host(tenant, snapshot, size_gb)
        if zone and zone != host.zone.name:
            raise NoValidHost(
                f"The snapshot lies in zone {host.zone.name}, not {zone}.",
                details={"size_gb": size_gb, "zone": zone},
            )
    quota_enforce_many(tenant, {"volumes": 1, "volume_gb": size_gb})
    cluster = None
    if rbd:  # a shared backend: the volume has no host, a host of its zone makes it
        cluster = ceph_cluster_choose(tenant, size_gb=size_gb, zone=zone)
        worker = ceph_worker_host(cluster)
    else:
        if host is None:
            host = volume_host_choose(tenant, size_gb=size_gb, zone=zone)
        worker = host
    volume = Volume.objects.create(
        tenant=tenant,
        name=name,
        description=description,
        size_gb=size_gb,
        volume_type=volume_type,
        status=VolumeStatus.CREATING,
        zone=worker.zone,
        host=host,
        ceph_cluster=cluster,
        # From a snapshot: the image its volume was made from, so it stays bootable.
        source_image_id=image.pk
        if image is not None
        else (snapshot.volume.source_image_id if snapshot is not None else None),
        source_snapshot=snapshot,
    )
    sources = {
        "image": str(image.pk) if image is not None else None,
        "snapshot": str(snapshot.pk) if snapshot is not None else None,
    }
    if volume_type.encrypted:
        try:
            volume_key_assign(volume)  # its data key, wrapped by the tenant's key
        except VolumeKeyError as exc:
            logger.error("encrypted volume refused: %s", exc)  # names files, never keys
            raise ConflictError(
                "Encrypted volumes cannot be made now: the cloud's key configuration is "
                "broken, and its operators are told.",
                code="encryption_unavailable",
            ) from None
    operation = operation_create(
        actor=actor,
        tenant=tenant,
        action="volume.create",
        target_id=volume.pk,
        host_name=worker.name,
        params=sources,
    )
    audit_record(
        actor=actor,
        action="volume.create",
        tenant_id=tenant.pk,
        target=volume,
        details={
            "size_gb": size_gb,
            "volume_type": volume_type.name,
            **sources,
            "zone": worker.zone.name,
            "jurisdiction": worker.zone.jurisdiction,
            "encrypted": volume_type.encrypted,
            **({"ceph_cluster": cluster.name} if cluster is not None else {}),
            "operation": str(operation.pk),
        },
    )
    return volume, operation


@transaction.atomic
def volume_update(
    *, actor: Actor, volume: Volume, name: str | None = None, description: str | None = None
) -> Volume:
    """Rename a volume or change its description, in any status (nothing runs on a host)."""
    volume = Volume.objects.select_for_update().get(pk=volume.pk)
    changes: dict[str, str] = {}
    if name is not None and name != volume.name:
        changes["name"] = volume.name = check_name("volume", name)
    if description is not None and description != volume.description:
        changes["description"] = volume.description = check_description(description)
    if changes:
        volume.save(update_fields=[*changes, "updated_at"])
        audit_record(
            actor=actor, action="volume.update", tenant_id=volume.tenant_id, target=volume,
            details=changes,
        )  # fmt: skip
    return volume


def _locked(volume: Volume) -> Volume:
    """The volume's row, locked until the transaction ends (a snapshot being accepted
    takes the same lock)."""
    return Volume.objects.select_for_update().get(pk=volume.pk)


def check_key_not_shredded(volume: Volume) -> None:
    """409 `volume_key_shredded`: its tenant's key was destroyed, its data cannot be opened
    (only deleting it remains)."""
    if volume.key_shredded_at is not None:
        raise ConflictError(
            "This volume's encryption key was destroyed (its tenant's keys were shredded): "
            "its data can never be read again. It can only be deleted.",
            code="volume_key_shredded",
            details={"key_shredded_at": volume.key_shredded_at.isoformat()},
        )


def _host_of(volume: Volume) -> Host:
    """The host whose worker acts on the volume's storage: a directory volume's own; for an
    rbd volume, the host of the instance it is attached to (which grows it live), else an
    enabled host of its cluster's zone (409 `no_valid_host` when there is none now)."""
    if volume.host is not None:
        return volume.host
    if volume.ceph_cluster is None:
        raise ConflictError("This volume has no host to act on.", code="wrong_state")
    attachment = active_attachment(volume.pk)
    if attachment is not None:
        return attachment.host
    return ceph_worker_host(volume.ceph_cluster)


@transaction.atomic
def volume_extend(*, actor: Actor, volume: Volume, size_gb: int) -> Operation:
    """Accept growing an `available` or `in-use` volume (attached: live, the guest sees
    the new size) to `size_gb` GiB (409 `wrong_state` otherwise):
    only bigger (400 `volume_cannot_shrink`), within its type's maximum, and the growth
    within the `volume_gb` quota — claimed now, by recording the new size, so concurrent
    extends and creates count it. The worker grows the storage; a failure gives the old
    size back."""
    VOLUME_LIFECYCLE.check(volume, "extend")
    check_key_not_shredded(volume)
    if size_gb <= volume.size_gb:
        raise InvalidRequest(
            f"A volume only grows: it has {volume.size_gb} GiB, {size_gb} GiB was asked for.",
            code="volume_cannot_shrink",
            details={"size_gb": volume.size_gb, "requested": size_gb},
        )
    _check_type(volume.volume_type, size_gb)
    host = _host_of(volume)
    quota_enforce_many(volume.tenant, {"volume_gb": size_gb - volume.size_gb})
    refuse_while_snapshotting(_locked(volume), "be extended")
    previous = volume.size_gb
    VOLUME_LIFECYCLE.begin(volume, "extend", size_gb=size_gb)
    return operation_queue(
        actor=actor,
        tenant=volume.tenant,
        target=volume,
        action="volume.extend",
        host_name=host.name,
        params={"from_gb": previous, "to_gb": size_gb},
    )


@transaction.atomic
def volume_delete(*, actor: Actor, volume: Volume) -> Operation:
    """Accept deleting an `available` or `error` volume (409 `wrong_state` otherwise): it
    goes `deleting`, and the worker erases its storage (overwritten, then removed) before
    the space is freed; the volume ends `deleted`, with how it was erased (`erased_by`).
    Its snapshots are standalone copies: they stay (409 `snapshot_in_progress` only while
    one is being made)."""
    refuse_while_snapshotting(_locked(volume), "be deleted")
    VOLUME_LIFECYCLE.begin(volume, "delete")
    host = _host_of(volume)
    return operation_queue(
        actor=actor,
        tenant=volume.tenant,
        target=volume,
        action="volume.delete",
        host_name=host.name,
        params={},
    )


def image_copy_in_progress(image: Image) -> str | None:
    """Why `image` cannot be deleted now (images.usage): a volume is being made from it, and
    its worker still has to read the file."""
    if Volume.objects.filter(source_image_id=image.pk, status=VolumeStatus.CREATING).exists():
        return "A volume is being created from this image; delete it once that ends."
    return None
