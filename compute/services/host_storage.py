"""Housekeeping of a host's storage, run by the reconciler: what the control plane itself
left on a host and no longer needs, which still holds a tenant's data.

- A cached base image (`image-<id>` in the images pool) of an image that was deleted, once
  no instance on that host still boots from it (their overlays read it), is wiped and
  removed. A private image's cache is its owner's data; a deleted public image's is dead
  weight. An image id the database does not know is left alone (not ours to judge).
- A snapshot's copy (`snapshot-<id>` in the instances pool) whose image is no longer being
  saved is wiped and removed (its operation failed and could not clean up).

Each removal is audited as `host.volume_removed`.
"""

from __future__ import annotations

import logging
import re
import uuid

from compute.drivers.base import DriverError, Hypervisor
from compute.models import Host, Image, Instance
from compute.services.hosts import pool_name
from iaas.audit import Actor, audit_record

logger = logging.getLogger(__name__)
_CACHED_IMAGE = re.compile(r"^image-([0-9a-f-]{36})$")
_SNAPSHOT_COPY = re.compile(r"^snapshot-([0-9a-f-]{36})$")


def _ids(names: list[str], pattern: re.Pattern[str]) -> dict[uuid.UUID, str]:
    found = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            try:
                found[uuid.UUID(match.group(1))] = name
            except ValueError:
                continue
    return found


def _remove(hv: Hypervisor, host: Host, pool: str, name: str, kind: str, actor: Actor) -> bool:
    try:
        hv.delete_volume(pool, name, wipe=host.domain_type != "test")
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


def remove_unneeded_volumes(hv: Hypervisor, host: Host, actor: Actor) -> int:
    """Remove the cached images and snapshot copies this host no longer needs (see the
    module docstring); returns how many were removed. A host that cannot list its pools is
    skipped (the next round tries again)."""
    images_pool = pool_name(host.name, "images")
    instances_pool = pool_name(host.name, "instances")
    try:
        cached = _ids([v.name for v in hv.list_volumes(images_pool)], _CACHED_IMAGE)
        copies = _ids([v.name for v in hv.list_volumes(instances_pool)], _SNAPSHOT_COPY)
    except DriverError as exc:
        logger.warning("host %s: storage not checked: %s", host.name, exc)
        return 0
    removed = 0
    if cached:
        deleted = set(
            Image.objects.filter(pk__in=cached, status=Image.Status.DELETED).values_list(
                "pk", flat=True
            )
        )
        in_use = set(
            Instance.objects.filter(host=host, image_id__in=deleted)
            .exclude(status=Instance.Status.DELETED)
            .values_list("image_id", flat=True)
        )
        for image_id in sorted(deleted - in_use):
            removed += _remove(hv, host, images_pool, cached[image_id], "cached_image", actor)
    if copies:
        saving = set(
            Image.objects.filter(pk__in=copies, status=Image.Status.SAVING).values_list(
                "pk", flat=True
            )
        )
        known = set(Image.objects.filter(pk__in=copies).values_list("pk", flat=True))
        for image_id in sorted(known - saving):
            removed += _remove(hv, host, instances_pool, copies[image_id], "snapshot_copy", actor)
    return removed
