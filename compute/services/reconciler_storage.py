"""Housekeeping of a host's storage, run by the reconciler: what the control plane itself
left on a host and no longer needs, which still holds a tenant's data.

- A cached base image (`image-<id>` in the images pool; names: hosts.naming) of an image
  that was deleted, once no instance on that host still boots from it (their overlays read
  it), is wiped and removed. A private image's cache is its owner's data; a deleted public
  image's is dead weight.
- A snapshot's copy (`snapshot-<id>` in the instances pool) whose image is no longer being
  saved is wiped and removed (its operation failed and could not clean up).

Each removal is audited as `host.volume_removed`. Everything else in the images and
instances pools that the database does not account for — a disk or console log of an
instance that is gone or unknown, a cached image or copy of an unknown image, a name
Andromède never gives — is an orphan: reported (OrphanReport of kind `volume`, a
`host.orphan` audit event on first sight), never deleted.
"""

from __future__ import annotations

import logging
import uuid

from compute.models import Instance, Migration
from hosts import naming
from hosts.models import Host, OrphanReport
from hosts.services.orphans import orphan_report
from hypervisor.base import DriverError, Hypervisor
from iaas.audit import Actor, audit_record
from images.models import Image

logger = logging.getLogger(__name__)
NOT_OURS = "not a volume Andromède makes"


def _owned(names: list[str], pool_kinds: set[naming.VolumeKind]) -> dict[str, naming.VolumeName]:
    """The names among `names` that parse as one of the pool's kinds (the others are not
    Andromède's, in this pool)."""
    owned = {}
    for name in names:
        parsed = naming.parse_volume(name)
        if parsed is not None and parsed.kind in pool_kinds:
            owned[name] = parsed
    return owned


def _remove(hv: Hypervisor, host: Host, pool: str, name: str, kind: str, actor: Actor) -> bool:
    try:
        hv.delete_storage_volume(pool, name)
    except DriverError as exc:
        logger.warning("host %s: %s %s not removed: %s", host.name, kind, name, exc)
        return False
    audit_record(
        actor=actor,
        action="host.volume_removed",
        target=host,
        details={"kind": kind, "pool": pool, "volume": name},
    )
    return True


def _report_orphan(host: Host, pool: str, name: str, actor: Actor, reason: str) -> int:
    """Record a volume the database does not account for; 1 the first time it is seen."""
    return int(
        orphan_report(
            actor=actor,
            host=host,
            kind=OrphanReport.Kind.VOLUME,
            name=f"{pool}/{name}",
            details={"pool": pool, "volume": name, "reason": reason},
        )
    )


def _instance_volume_orphans(
    host: Host, owned: dict[str, naming.VolumeName], pool: str, actor: Actor
) -> int:
    """Disks, seeds and console logs in the instances pool that no live instance on this
    host owns: reported."""
    owners = {name: v.owner_id for name, v in owned.items() if v.belongs_to_instance}
    live = set(
        Instance.objects.filter(host=host, pk__in=set(owners.values()))
        .exclude(status=Instance.Status.DELETED)
        .values_list("pk", flat=True)
    ) | arriving_instances(host)
    # A migration's scratch copy belongs to it while it runs (on its source host).
    migrations = {v.owner_id: name for name, v in owned.items() if v.kind == _MIGRATION_COPY}
    running = set(
        Migration.objects.filter(
            pk__in=migrations, source_host=host, status=Migration.Status.CLAIMED
        ).values_list("pk", flat=True)
    )
    return sum(
        _report_orphan(host, pool, name, actor, "no live instance owns it")
        for name, owner in sorted(owners.items())
        if owner not in live
    ) + sum(
        _report_orphan(host, pool, name, actor, "no migration in progress owns it")
        for migration_id, name in sorted(migrations.items())
        if migration_id not in running
    )


_MIGRATION_COPY = naming.VolumeKind.MIGRATION_COPY


def arriving_instances(host: Host) -> set[uuid.UUID]:
    """Instances being cold-migrated to `host`: their domain and disks appear there before
    the instance's host changes (compute.worker.migrate); they are no orphans."""
    return set(
        Migration.objects.filter(target_host=host, status=Migration.Status.CLAIMED).values_list(
            "instance_id", flat=True
        )
    )


def check_host_storage(hv: Hypervisor, host: Host, actor: Actor) -> dict[str, int]:
    """Remove what this host no longer needs and report what nobody accounts for (see the
    module docstring): `{"volumes_removed": n, "volume_orphans": m}` (orphans newly seen).
    A host that cannot list its pools is skipped (the next round tries again)."""
    counts = {"volumes_removed": 0, "volume_orphans": 0}
    images_pool = naming.storage_pool(host.name, "images")
    instances_pool = naming.storage_pool(host.name, "instances")
    try:
        image_names = [v.name for v in hv.list_storage_volumes(images_pool)]
        instance_names = [v.name for v in hv.list_storage_volumes(instances_pool)]
    except DriverError as exc:
        logger.warning("host %s: storage not checked: %s", host.name, exc)
        return counts
    in_images = _owned(image_names, {naming.VolumeKind.CACHED_IMAGE})
    in_instances = _owned(
        instance_names,
        {
            naming.VolumeKind.ROOT_DISK,
            naming.VolumeKind.SEED,
            naming.VolumeKind.CONSOLE_LOG,
            naming.VolumeKind.SNAPSHOT_COPY,
            naming.VolumeKind.MIGRATION_COPY,
        },
    )
    cached: dict[uuid.UUID, str] = {v.owner_id: name for name, v in in_images.items()}
    copies: dict[uuid.UUID, str] = {
        v.owner_id: name
        for name, v in in_instances.items()
        if v.kind == naming.VolumeKind.SNAPSHOT_COPY
    }
    known_images = dict(Image.objects.filter(pk__in=[*cached, *copies]).values_list("pk", "status"))
    removed = 0
    deleted = {pk for pk in cached if known_images.get(pk) == Image.Status.DELETED}
    in_use = set(
        Instance.objects.filter(host=host, image_id__in=deleted)
        .exclude(status=Instance.Status.DELETED)
        .values_list("image_id", flat=True)
    )
    for image_id in sorted(deleted - in_use):
        removed += _remove(hv, host, images_pool, cached[image_id], "cached_image", actor)
    for image_id, name in sorted(copies.items()):
        if image_id in known_images and known_images[image_id] != Image.Status.SAVING:
            removed += _remove(hv, host, instances_pool, name, "snapshot_copy", actor)
    orphans = 0
    for pool, names, owned in (
        (images_pool, image_names, in_images),
        (instances_pool, instance_names, in_instances),
    ):
        for name in sorted(set(names) - set(owned)):
            orphans += _report_orphan(host, pool, name, actor, NOT_OURS)
    for pool, by_image in ((images_pool, cached), (instances_pool, copies)):
        for image_id, name in sorted(by_image.items()):
            if image_id not in known_images:
                orphans += _report_orphan(host, pool, name, actor, "no such image")
    orphans += _instance_volume_orphans(host, in_instances, instances_pool, actor)
    counts.update(volumes_removed=removed, volume_orphans=orphans)
    return counts
