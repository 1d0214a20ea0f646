"""Placement (DESIGN §2): filters, a weigher, and an atomic claim.

Filters run in SQL: the host is enabled, its zone's jurisdiction is in the tenant's
residency policy (and is the requested zone, if any), its architecture matches, and its free
capacity — (capacity - reserved) x allocation ratio - what allocations already hold — fits
the request. The weigher orders by free RAM (spread) or by least free RAM (pack). The chosen
host's row is then locked and its capacity re-checked before the `Allocation` is inserted, so
two concurrent placements can never overcommit a host.

What allocations hold is kept on the host row (`Host.allocated_*`), so placement reads plain
columns and costs O(hosts), whatever the number of instances (docs/benchmarks.md). Those
columns change only here, under the host row's lock, in the transaction that inserts
(`claim`) or deletes (`release_allocation`) the Allocation, or changes its size
(`resize_allocation`); nothing else may create, resize or delete an Allocation.
`compute.services.reconciler.check_host_usage` recomputes them from the Allocation rows and corrects
(and audits) any drift.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import F, FloatField, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from compute.models import Allocation, Instance, Migration, ServerGroup
from hosts.models import Host
from iaas.errors import ConflictError

CANDIDATES_TRIED = 5


class NoValidHost(ConflictError):
    code = "no_valid_host"


class ResidencyUnsatisfiable(ConflictError):
    code = "residency_unsatisfiable"


@dataclass(frozen=True)
class PlacementRequest:
    vcpus: int
    memory_mb: int
    disk_gb: int
    jurisdictions: tuple[str, ...]
    zone: str | None = None
    arch: str = "x86_64"
    strategy: str = "spread"  # spread | pack
    server_group_id: uuid.UUID | None = None
    host_id: uuid.UUID | None = None  # this host only (the instance boots from a volume there)
    exclude_host_id: uuid.UUID | None = None  # not this host (a migration leaves it)


def _free(capacity: str, reserved: str, ratio: str, allocated: str) -> object:
    return Cast(F(capacity) - F(reserved), FloatField()) * F(ratio) - F(allocated)


def candidates(request: PlacementRequest) -> QuerySet[Host]:
    """Hosts that pass every filter, best first."""
    hosts = Host.objects.filter(
        state=Host.State.ENABLED,
        zone__jurisdiction__in=request.jurisdictions,
        arch=request.arch,
    )
    if request.zone:
        hosts = hosts.filter(zone__name=request.zone)
    if request.host_id is not None:
        hosts = hosts.filter(pk=request.host_id)
    if request.exclude_host_id is not None:
        hosts = hosts.exclude(pk=request.exclude_host_id)
    hosts = hosts.annotate(
        free_vcpus=_free("cpus", "reserved_cpus", "cpu_allocation_ratio", "allocated_vcpus"),
        free_memory=_free(
            "memory_mb", "reserved_memory_mb", "ram_allocation_ratio", "allocated_memory_mb"
        ),
        free_disk=_free(
            "disk_gb", "reserved_disk_gb", "disk_allocation_ratio", "allocated_disk_gb"
        ),
    )
    hosts = hosts.filter(
        free_vcpus__gte=request.vcpus,
        free_memory__gte=request.memory_mb,
        free_disk__gte=request.disk_gb,
    )
    order = "-free_memory" if request.strategy == "spread" else "free_memory"
    return hosts.order_by(order, "name")


def _fits(host: Host, request: PlacementRequest) -> bool:
    """The re-check, on the locked (hence current) host row."""
    return (
        (host.cpus - host.reserved_cpus) * host.cpu_allocation_ratio - host.allocated_vcpus
        >= request.vcpus
        and (host.memory_mb - host.reserved_memory_mb) * host.ram_allocation_ratio
        - host.allocated_memory_mb
        >= request.memory_mb
        and (host.disk_gb - host.reserved_disk_gb) * host.disk_allocation_ratio
        - host.allocated_disk_gb
        >= request.disk_gb
    )


def claim(instance: Instance, request: PlacementRequest) -> Host:
    """Choose a host and insert the instance's Allocation on it, in the caller's transaction,
    adding it to the host's `allocated_*` columns under the host row's lock.
    Raises ResidencyUnsatisfiable when no enabled host lies in an allowed jurisdiction, and
    NoValidHost when none has room."""
    host = place(instance, request)
    Allocation.objects.create(
        instance=instance,
        host=host,
        vcpus=request.vcpus,
        memory_mb=request.memory_mb,
        disk_gb=request.disk_gb,
    )
    return host


def place(instance: Instance, request: PlacementRequest) -> Host:
    """Choose a host and add the request to its `allocated_*` columns under its row lock, in
    the caller's transaction, which must record what holds that capacity: an Allocation
    (`claim`) or a Migration (`claim_migration`). The errors of `claim`."""
    in_policy = Host.objects.filter(
        state=Host.State.ENABLED, zone__jurisdiction__in=request.jurisdictions
    )
    if request.exclude_host_id is not None:
        in_policy = in_policy.exclude(pk=request.exclude_host_id)
    if request.zone:
        in_policy = in_policy.filter(zone__name=request.zone)
    if not in_policy.exists():
        raise ResidencyUnsatisfiable(
            "No available zone is allowed by your residency policy "
            f"({', '.join(request.jurisdictions)})"
            + (f" in zone {request.zone}" if request.zone else "")
            + ". Ask an operator, or change the policy.",
            details={"residency": list(request.jurisdictions), "zone": request.zone},
        )
    group, hosts = _server_group_filter(instance, request)
    best_first = [candidate.pk for candidate in hosts[:CANDIDATES_TRIED]]
    # Lock every candidate at once, in primary-key order: all placements take host locks in
    # one order, so two of them can never deadlock (locking one by one in weigher order,
    # which differs between concurrent requests, could).
    locked = {
        host.pk: host
        for host in Host.objects.select_for_update().filter(pk__in=best_first).order_by("pk")
    }
    for host_pk in best_first:
        host = locked[host_pk]
        if host.state == Host.State.ENABLED and _fits(host, request):
            Host.objects.filter(pk=host.pk).update(
                allocated_vcpus=F("allocated_vcpus") + request.vcpus,
                allocated_memory_mb=F("allocated_memory_mb") + request.memory_mb,
                allocated_disk_gb=F("allocated_disk_gb") + request.disk_gb,
            )
            host.allocated_vcpus += request.vcpus
            host.allocated_memory_mb += request.memory_mb
            host.allocated_disk_gb += request.disk_gb
            return host
    if group is not None:
        raise NoValidHost(
            f"No valid host was found for server group {group.name} ({group.policy}): "
            + (
                "its members' host has no room"
                if group.policy == ServerGroup.Policy.AFFINITY
                else "every enabled host in your allowed zones with room already runs a member"
            )
            + f" for {request.vcpus} vCPU, {request.memory_mb} MiB RAM and "
            f"{request.disk_gb} GiB disk.",
            details={
                "server_group": group.name,
                "policy": group.policy,
                "vcpus": request.vcpus,
                "memory_mb": request.memory_mb,
                "disk_gb": request.disk_gb,
            },
        )
    raise NoValidHost(
        "No valid host was found: no enabled host in your allowed zones has room for "
        f"{request.vcpus} vCPU, {request.memory_mb} MiB RAM and {request.disk_gb} GiB disk.",
        details={
            "vcpus": request.vcpus,
            "memory_mb": request.memory_mb,
            "disk_gb": request.disk_gb,
        },
    )


def _server_group_filter(
    instance: Instance, request: PlacementRequest
) -> tuple[ServerGroup | None, QuerySet[Host]]:
    """The server-group filter: affinity keeps only the host(s) the group's live members run
    on (any host for the first member), anti-affinity drops them. The group row is locked
    first, so concurrent placements of members of one group run one after the other and each
    sees where the previous ones went."""
    hosts = candidates(request)
    if request.server_group_id is None:
        return None, hosts
    # NO KEY UPDATE: serialises placements of the group's members, yet does not conflict with
    # the key-share lock a member's foreign key takes on the row.
    group = ServerGroup.objects.select_for_update(no_key=True).get(pk=request.server_group_id)
    member_hosts = (
        Instance.objects.filter(server_group_id=group.pk, host__isnull=False)
        .exclude(status=Instance.Status.DELETED)
        .exclude(pk=instance.pk)
        .values("host_id")
    )
    if group.policy == ServerGroup.Policy.AFFINITY:
        if member_hosts.exists():
            hosts = hosts.filter(pk__in=member_hosts)
    else:
        hosts = hosts.exclude(pk__in=member_hosts)
    return group, hosts


def release_allocation(instance: Instance) -> bool:
    """Delete the instance's Allocation, if any, and subtract it from its host's `allocated_*`
    columns under the host row's lock. The only way an Allocation may be deleted. Must run
    in a transaction (the caller's). Returns whether there was one to release."""
    allocation = Allocation.objects.filter(instance_id=instance.pk).first()
    if allocation is None:
        return False
    Host.objects.select_for_update().filter(pk=allocation.host_id).values_list("pk").get()
    # Under the host lock a concurrent release of the same allocation has either committed
    # (nothing left to delete here) or not started: subtract only what this delete removed.
    deleted, _ = Allocation.objects.filter(pk=allocation.pk).delete()
    if not deleted:
        return False
    Host.objects.filter(pk=allocation.host_id).update(
        allocated_vcpus=F("allocated_vcpus") - allocation.vcpus,
        allocated_memory_mb=F("allocated_memory_mb") - allocation.memory_mb,
        allocated_disk_gb=F("allocated_disk_gb") - allocation.disk_gb,
    )
    return True


def resize_allocation(instance: Instance, *, vcpus: int, memory_mb: int, disk_gb: int) -> None:
    """Set the instance's Allocation to the given size on its own host (resize stays on the
    host), adjusting the host's `allocated_*` columns by the difference under the host row's
    lock. Growth in any dimension is re-checked against the locked host (NoValidHost if it
    does not fit; nothing changed); shrinking always fits. Must run in a transaction."""
    allocation = Allocation.objects.get(instance_id=instance.pk)
    host = Host.objects.select_for_update().get(pk=allocation.host_id)
    allocation = Allocation.objects.get(pk=allocation.pk)  # current, under the host lock
    delta_vcpus = vcpus - allocation.vcpus
    delta_memory = memory_mb - allocation.memory_mb
    delta_disk = disk_gb - allocation.disk_gb
    growth = PlacementRequest(
        vcpus=max(delta_vcpus, 0),
        memory_mb=max(delta_memory, 0),
        disk_gb=max(delta_disk, 0),
        jurisdictions=(),
    )
    if (growth.vcpus or growth.memory_mb or growth.disk_gb) and not _fits(host, growth):
        raise NoValidHost(
            f"Its host has no room for {growth.vcpus} more vCPU, {growth.memory_mb} "
            f"MiB more RAM and {growth.disk_gb} GiB more disk (a resize stays on its host).",
            details={
                "vcpus": growth.vcpus,
                "memory_mb": growth.memory_mb,
                "disk_gb": growth.disk_gb,
            },
        )
    Allocation.objects.filter(pk=allocation.pk).update(
        vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb
    )
    Host.objects.filter(pk=host.pk).update(
        allocated_vcpus=F("allocated_vcpus") + delta_vcpus,
        allocated_memory_mb=F("allocated_memory_mb") + delta_memory,
        allocated_disk_gb=F("allocated_disk_gb") + delta_disk,
    )


def _add_usage(host_id: uuid.UUID, sign: int, vcpus: int, memory_mb: int, disk_gb: int) -> None:
    """Add (sign 1) or subtract (-1) a size to the host's `allocated_*` columns; the caller
    holds the host row's lock."""
    Host.objects.filter(pk=host_id).update(
        allocated_vcpus=F("allocated_vcpus") + sign * vcpus,
        allocated_memory_mb=F("allocated_memory_mb") + sign * memory_mb,
        allocated_disk_gb=F("allocated_disk_gb") + sign * disk_gb,
    )


def claim_migration(instance: Instance, request: PlacementRequest) -> Migration:
    """Choose a target host for the instance (`request.exclude_host_id`: its own) and claim
    the request's size there, held by a new `claimed` Migration, in the caller's
    transaction; the instance's Allocation keeps holding its source. The errors of `claim`."""
    assert instance.host_id is not None
    target = place(instance, request)
    return Migration.objects.create(
        instance=instance,
        source_host_id=instance.host_id,
        target_host=target,
        vcpus=request.vcpus,
        memory_mb=request.memory_mb,
        disk_gb=request.disk_gb,
    )


def _lock_hosts(*host_ids: uuid.UUID) -> None:
    """Lock host rows in primary-key order, the order every placement takes them in."""
    list(Host.objects.select_for_update().filter(pk__in=host_ids).order_by("pk").values("pk"))


def migration_complete(migration: Migration) -> bool:
    """The instance now runs on the migration's target: its Allocation moves there (the
    claim becomes it: the target's columns already count it) and leaves its source's
    columns; the migration `succeeded`. Must run in a transaction. False (nothing changed)
    when the migration is no longer claimed."""
    _lock_hosts(migration.source_host_id, migration.target_host_id)
    if not Migration.objects.filter(pk=migration.pk, status=Migration.Status.CLAIMED).update(
        status=Migration.Status.SUCCEEDED, finished_at=timezone.now()
    ):
        return False
    allocation = Allocation.objects.get(instance_id=migration.instance_id)
    _add_usage(allocation.host_id, -1, allocation.vcpus, allocation.memory_mb, allocation.disk_gb)
    Allocation.objects.filter(pk=allocation.pk).update(
        host_id=migration.target_host_id,
        vcpus=migration.vcpus,
        memory_mb=migration.memory_mb,
        disk_gb=migration.disk_gb,
    )
    return True


def migration_release(migration: Migration, error: str) -> bool:
    """The migration failed: its claim on the target is released, the migration `failed`
    with `error`. Must run in a transaction. False when it was no longer claimed."""
    _lock_hosts(migration.target_host_id)
    if not Migration.objects.filter(pk=migration.pk, status=Migration.Status.CLAIMED).update(
        status=Migration.Status.FAILED, finished_at=timezone.now(), error=error[:2000]
    ):
        return False
    size = (migration.vcpus, migration.memory_mb, migration.disk_gb)
    _add_usage(migration.target_host_id, -1, *size)
    return True
