"""Names of objects on hosts: what hosts.naming builds, it parses back to the same kind and
owner; what it did not build does not parse (the reconciler reports those as orphans)."""

from __future__ import annotations

import uuid

import pytest

from hosts import naming
from hosts.models import StoragePool

IDS = [uuid.uuid4() for _ in range(20)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
BUILDERS = {
    naming.VolumeKind.ROOT_DISK: naming.root_disk,
    naming.VolumeKind.SEED: naming.seed,
    naming.VolumeKind.CONSOLE_LOG: naming.console_log,
    naming.VolumeKind.CACHED_IMAGE: naming.cached_image,
    naming.VolumeKind.SNAPSHOT_COPY: naming.snapshot_copy,
    naming.VolumeKind.MIGRATION_COPY: naming.migration_copy,
    naming.VolumeKind.VOLUME: naming.volume,
    naming.VolumeKind.VOLUME_SNAPSHOT: naming.volume_snapshot,
}


@pytest.mark.parametrize("kind", list(naming.VolumeKind))
def test_every_volume_name_parses_back_to_its_kind_and_owner(kind: naming.VolumeKind) -> None:
    for owner in IDS:
        for given in (owner, str(owner), str(owner).upper()):
            name = BUILDERS[kind](given)
            assert name == naming.volume_name(kind, owner)
            assert naming.parse_volume(name) == naming.VolumeName(kind, owner), name


def test_the_names_are_the_ones_hosts_already_hold() -> None:
    """Hosts of earlier versions hold these names: changing them would orphan every disk."""
    owner = uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
    assert naming.root_disk(owner) == f"instance-{owner}-root"
    assert naming.seed(owner) == f"instance-{owner}-seed"
    assert naming.console_log(owner) == f"instance-{owner}-console.log"
    assert naming.cached_image(owner) == f"image-{owner}"
    assert naming.snapshot_copy(owner) == f"snapshot-{owner}"
    assert naming.migration_copy(owner) == f"migration-{owner}"
    assert naming.volume(owner) == f"volume-{owner}"
    assert naming.volume_snapshot(owner) == f"volsnap-{owner}"
    assert naming.domain(owner) == str(owner)
    assert naming.storage_pool("h-01", "images") == "andromede-h-01-images"
    assert naming.tenant_network(owner) == "andr-t-0f0e0d0c"
    assert naming.tenant_bridge(owner) == "andrbr0f0e0d0c"
    assert len(naming.tenant_bridge(owner)) <= 15  # Linux's limit for an interface name


@pytest.mark.parametrize(
    "foreign",
    [
        "",
        "disk.qcow2",
        "instance-root",
        "instance-not-a-uuid-root",
        f"instance-{uuid.uuid4()}-swap",
        f"instance-{uuid.uuid4()}-console.logx",
        f"instance-{uuid.uuid4()}-console.log.x",
        f"xinstance-{uuid.uuid4()}-root",
        f"image-{uuid.uuid4()}.bak",
        f"image-{str(uuid.uuid4()).upper()}",  # libvirt names are case-sensitive; ours are lower
        f"snapshot-{uuid.uuid4().hex}",
        f"snapshot-{uuid.uuid4()}-{uuid.uuid4()}",
        f"volume-{uuid.uuid4()}.qcow2",
        f"volume-{uuid.uuid4().hex}",
    ],
)
def test_a_name_andromede_does_not_give_does_not_parse(foreign: str) -> None:
    assert naming.parse_volume(foreign) is None


def test_a_rotated_console_log_is_its_instances_console_log() -> None:
    owner = uuid.uuid4()
    for suffix in ("", ".0", ".1", ".12"):
        parsed = naming.parse_volume(naming.console_log(owner) + suffix)
        assert parsed == naming.VolumeName(naming.VolumeKind.CONSOLE_LOG, owner)


def test_only_instance_volumes_belong_to_an_instance() -> None:
    owner = uuid.uuid4()
    belongs = {kind: naming.VolumeName(kind, owner).belongs_to_instance for kind in BUILDERS}
    assert belongs == {
        naming.VolumeKind.ROOT_DISK: True,
        naming.VolumeKind.SEED: True,
        naming.VolumeKind.CONSOLE_LOG: True,
        naming.VolumeKind.CACHED_IMAGE: False,
        naming.VolumeKind.SNAPSHOT_COPY: False,
        naming.VolumeKind.MIGRATION_COPY: False,  # owned by a migration
        naming.VolumeKind.VOLUME: False,  # a volume outlives the instances it is attached to
        naming.VolumeKind.VOLUME_SNAPSHOT: False,  # and its snapshots outlive it
    }


def test_domain_names_round_trip_and_foreign_domains_do_not_parse() -> None:
    for owner in IDS:
        assert naming.parse_domain(naming.domain(owner)) == owner
    for foreign in ("", "web-1", "instance-00000001", f"{uuid.uuid4()}-x", uuid.uuid4().hex):
        assert naming.parse_domain(foreign) is None


@pytest.mark.parametrize("host", ["local", "h01", "fr-par-1-h07", "a.b-c"])
def test_pool_names_round_trip_whatever_dashes_the_host_name_has(host: str) -> None:
    roles = tuple(StoragePool.Role.values)
    for role in roles:
        assert naming.parse_storage_pool(naming.storage_pool(host, role), roles) == (host, role)
    assert naming.parse_storage_pool(f"andromede-{host}-scratch", roles) is None
    assert naming.parse_storage_pool(f"default-{host}-images", roles) is None
    assert naming.parse_storage_pool("andromede--images", roles) is None


def test_network_and_bridge_names_round_trip_to_the_tenant_prefix() -> None:
    for tenant in IDS:
        prefix = str(tenant)[:8]
        assert naming.parse_tenant_network(naming.tenant_network(tenant)) == prefix
        assert naming.parse_tenant_bridge(naming.tenant_bridge(tenant)) == prefix
    for foreign in ("default", "virbr0", "andr-t-xyz", "andr-t-0123456789", "andrbr0123"):
        assert naming.parse_tenant_network(foreign) is None
        assert naming.parse_tenant_bridge(foreign) is None
