"""Housekeeping of a host's storage, run by the reconciler: what the control plane itself
left on a host and no longer needs, which still holds a tenant's data.

- A cached base image (`image-<id>` in the images pool) of an image that was deleted, once
  no instance on that host still boots from it (their overlays read it), is wiped and
  removed. A private image's cache is its owner's data; a deleted public image's is dead
  weight.
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
import re
import uuid

from compute.models import Host, Image, Instance, OrphanReport
from compute.services.hosts import pool_name
from hypervisor.base import DriverError, Hypervisor
from iaas.audit import Actor, audit_record

logger = logging.getLogger(__name__)
_UUID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_CACHED_IMAGE = re.compile(rf"^image-{_UUID}$")
_SNAPSHOT_COPY = re.compile(rf"^snapshot-{_UUID}$")
_INSTANCE_VOLUME = re.compile(rf"^instance-{_UUID}-(?:root|seed|console\.log)$")


def _ids(names: list[str], pattern: re.Pattern[str]) -> dict[uuid.UUID, str]:
    found = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match:  # the pattern admits only well-formed UUIDs
            found[uuid.UUID(match.group(1))] = name
    return found


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
    _report, created = OrphanReport.objects.update_or_create(
        host=host,
        kind=OrphanReport.Kind.VOLUME,
        name=f"{pool}/{name}",
        defaults={"details": {"pool": pool, "volume": name, "reason": reason}},
    )
    if created:
        audit_record(
            actor=actor,
            action="host.orphan",
            target=host,
            details={"kind": "volume", "pool": pool, "volume": name, "reason": reason},
        )
    return int(created)


def _instance_volume_orphans(host: Host, names: list[str], pool: str, actor: Actor) -> int:
    """Volumes of the instances pool that no live instance on this host owns: reported."""
    owners: dict[str, uuid.UUID | None] = {}
    for name in names:
        match = _INSTANCE_VOLUME.fullmatch(name)
        if match:
            owners[name] = uuid.UUID(match.group(1))
        elif not _SNAPSHOT_COPY.fullmatch(name):
            owners[name] = None  # not a name Andromède gives
    live = set(
        Instance.objects.filter(host=host, pk__in=[i for i in owners.values() if i])
        .exclude(status=Instance.Status.DELETED)
        .values_list("pk", flat=True)
    )
    found = 0
    for name, owner in sorted(owners.items()):
        if owner is None:
            found += _report_orphan(host, pool, name, actor, "not a volume Andromède makes")
        elif owner not in live:
            found += _report_orphan(host, pool, name, actor, "no live instance owns it")
    return found


def check_host_storage(hv: Hypervisor, host: Host, actor: Actor) -> dict[str, int]:
    """Remove what this host no longer needs and report what nobody accounts for (see the
    module docstring): `{"volumes_removed": n, "volume_orphans": m}` (orphans newly seen).
    A host that cannot list its pools is skipped (the next round tries again)."""
    counts = {"volumes_removed": 0, "volume_orphans": 0}
    images_pool = pool_name(host.name, "images")
    instances_pool = pool_name(host.name, "instances")
    try:
        image_names = [v.name for v in hv.list_storage_volumes(images_pool)]
        instance_names = [v.name for v in hv.list_storage_volumes(instances_pool)]
    except DriverError as exc:
        logger.warning("host %s: storage not checked: %s", host.name, exc)
        return counts
    cached = _ids(image_names, _CACHED_IMAGE)
    copies = _ids(instance_names, _SNAPSHOT_COPY)
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
    for name in sorted(image_names):
        match = _CACHED_IMAGE.fullmatch(name)
        if match is None:
            orphans += _report_orphan(
                host, images_pool, name, actor, "not a volume Andromède makes"
            )
        elif uuid.UUID(match.group(1)) not in known_images:
            orphans += _report_orphan(host, images_pool, name, actor, "no such image")
    for image_id, name in sorted(copies.items()):
        if image_id not in known_images:
            orphans += _report_orphan(host, instances_pool, name, actor, "no such image")
    orphans += _instance_volume_orphans(host, instance_names, instances_pool, actor)
    counts.update(volumes_removed=removed, volume_orphans=orphans)
    return counts
