"""The names of what Andromède makes on a host, built and parsed in this one place.

Every object the control plane creates on a host is named from the id of what it belongs
to, so that a name alone says whose it is: the reconciler parses names back to decide what
is still needed and what is an orphan. Whatever is built here parses back to the same kind
and owner (tests/hosts/test_naming.py); a name that does not parse is not one of ours.

- a domain is named by its instance's id;
- in the instances pool: `instance-<id>-root`, `instance-<id>-seed`,
  `instance-<id>-console.log`, and `snapshot-<image id>` while a snapshot is copied;
- in the images pool: `image-<image id>`, the cached base image;
- in the volumes pool: `volume-<volume id>`, a tenant's block storage volume, and
  `volsnap-<snapshot id>`, a snapshot of a volume;
- storage pools: `andromede-<host>-<role>` (a host name may contain dashes), and
  `andromede-ceph-<cluster id>`, a Ceph cluster's rbd pool (the same name on every host;
  its last part is never a role, so it never parses as a host's pool);
- a tenant's network and its bridge carry the tenant id's first 8 hex digits (Linux allows
  15 characters in an interface name).
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_HEX8 = r"[0-9a-f]{8}"
POOL_PREFIX = "andromede-"
NETWORK_PREFIX = "andr-t-"
BRIDGE_PREFIX = "andrbr"


class VolumeKind(enum.StrEnum):
    """What a storage volume on a host is, as its name says."""

    ROOT_DISK = "root_disk"
    SEED = "seed"
    CONSOLE_LOG = "console_log"
    CACHED_IMAGE = "cached_image"
    SNAPSHOT_COPY = "snapshot_copy"
    MIGRATION_COPY = "migration_copy"
    VOLUME = "volume"
    VOLUME_SNAPSHOT = "volume_snapshot"


@dataclass(frozen=True)
class VolumeName:
    """A parsed volume name: its kind and the id of its owner (an instance for root disks,
    seeds and console logs; an image for cached images and snapshot copies; a volume for a
    volume; a volume snapshot for a volume snapshot)."""

    kind: VolumeKind
    owner_id: uuid.UUID

    @property
    def belongs_to_instance(self) -> bool:
        return self.kind in _INSTANCE_KINDS


_INSTANCE_KINDS = {VolumeKind.ROOT_DISK, VolumeKind.SEED, VolumeKind.CONSOLE_LOG}
_VOLUME_PATTERNS = {
    VolumeKind.ROOT_DISK: (re.compile(rf"^instance-({_UUID})-root$"), "instance-{}-root"),
    VolumeKind.SEED: (re.compile(rf"^instance-({_UUID})-seed$"), "instance-{}-seed"),
    VolumeKind.CONSOLE_LOG: (
        # virtlogd rotates a console log into .0, .1, …: the same kind, the same owner.
        re.compile(rf"^instance-({_UUID})-console\.log(?:\.[0-9]+)?$"),
        "instance-{}-console.log",
    ),
    VolumeKind.CACHED_IMAGE: (re.compile(rf"^image-({_UUID})$"), "image-{}"),
    VolumeKind.SNAPSHOT_COPY: (re.compile(rf"^snapshot-({_UUID})$"), "snapshot-{}"),
    VolumeKind.MIGRATION_COPY: (re.compile(rf"^migration-({_UUID})$"), "migration-{}"),
    VolumeKind.VOLUME: (re.compile(rf"^volume-({_UUID})$"), "volume-{}"),
    VolumeKind.VOLUME_SNAPSHOT: (re.compile(rf"^volsnap-({_UUID})$"), "volsnap-{}"),
}


def volume_name(kind: VolumeKind, owner_id: uuid.UUID | str) -> str:
    """The name of the volume of `kind` that belongs to `owner_id`."""
    return _VOLUME_PATTERNS[kind][1].format(uuid.UUID(str(owner_id)))


def root_disk(instance_id: uuid.UUID | str) -> str:
    return volume_name(VolumeKind.ROOT_DISK, instance_id)


def seed(instance_id: uuid.UUID | str) -> str:
    """The NoCloud seed (cidata) of an instance."""
    return volume_name(VolumeKind.SEED, instance_id)


def console_log(instance_id: uuid.UUID | str) -> str:
    """The serial console's log, a file QEMU writes in the instances pool."""
    return volume_name(VolumeKind.CONSOLE_LOG, instance_id)


def cached_image(image_id: uuid.UUID | str) -> str:
    """An image's copy in a host's images pool, the base of its instances' root disks."""
    return volume_name(VolumeKind.CACHED_IMAGE, image_id)


def snapshot_copy(image_id: uuid.UUID | str) -> str:
    """The flattened copy of a root disk while a snapshot stores it into image `image_id`."""
    return volume_name(VolumeKind.SNAPSHOT_COPY, image_id)


def migration_copy(migration_id: uuid.UUID | str) -> str:
    """The flattened copy of a root disk, on its source host, while a cold migration sends
    it to its target (compute.models.Migration `migration_id`)."""
    return volume_name(VolumeKind.MIGRATION_COPY, migration_id)


def volume(volume_id: uuid.UUID | str) -> str:
    """A tenant's volume (volumes.Volume) in its host's volumes pool."""
    return volume_name(VolumeKind.VOLUME, volume_id)


def volume_snapshot(snapshot_id: uuid.UUID | str) -> str:
    """A snapshot of a volume (volumes.VolumeSnapshot), in its host's volumes pool."""
    return volume_name(VolumeKind.VOLUME_SNAPSHOT, snapshot_id)


def parse_volume(name: str) -> VolumeName | None:
    """The kind and owner of a volume Andromède makes; None for any other name."""
    for kind, (pattern, _template) in _VOLUME_PATTERNS.items():
        match = pattern.fullmatch(name)
        if match:
            return VolumeName(kind, uuid.UUID(match.group(1)))
    return None


def domain(instance_id: uuid.UUID | str) -> str:
    """A domain is named by its instance's id (never by a tenant-chosen string)."""
    return str(uuid.UUID(str(instance_id)))


def parse_domain(name: str) -> uuid.UUID | None:
    """The instance id a domain name carries; None for a domain that is not ours."""
    return uuid.UUID(name) if re.fullmatch(_UUID, name) else None


def storage_pool(host_name: str, role: str) -> str:
    """Pool names carry the host's name: unique even where several registered hosts share
    one libvirtd (tests, a lab)."""
    return f"{POOL_PREFIX}{host_name}-{role}"


def ceph_pool(cluster_id: uuid.UUID | str) -> str:
    """The rbd pool of a Ceph cluster (hosts.CephCluster) on any host of its zone."""
    return f"{POOL_PREFIX}ceph-{uuid.UUID(str(cluster_id))}"


def parse_storage_pool(name: str, roles: tuple[str, ...]) -> tuple[str, str] | None:
    """(host name, role) of a pool name built by `storage_pool` with one of `roles`."""
    if not name.startswith(POOL_PREFIX):
        return None
    host_name, _, role = name[len(POOL_PREFIX) :].rpartition("-")
    return (host_name, role) if host_name and role in roles else None


def _tenant_prefix(tenant_id: uuid.UUID | str) -> str:
    return str(uuid.UUID(str(tenant_id)))[:8]


def tenant_network(tenant_id: uuid.UUID | str) -> str:
    """The libvirt network of a tenant's default network on a host."""
    return f"{NETWORK_PREFIX}{_tenant_prefix(tenant_id)}"


def tenant_bridge(tenant_id: uuid.UUID | str) -> str:
    """The bridge of that network: 14 characters, within Linux's 15."""
    return f"{BRIDGE_PREFIX}{_tenant_prefix(tenant_id)}"


def parse_tenant_network(name: str) -> str | None:
    """The tenant id prefix (8 hex digits) a network name carries; None if not ours."""
    match = re.fullmatch(rf"{NETWORK_PREFIX}({_HEX8})", name)
    return match.group(1) if match else None


def parse_tenant_bridge(name: str) -> str | None:
    """The tenant id prefix (8 hex digits) a bridge name carries; None if not ours."""
    match = re.fullmatch(rf"{BRIDGE_PREFIX}({_HEX8})", name)
    return match.group(1) if match else None
