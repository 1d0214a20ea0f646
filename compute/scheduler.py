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
(`claim`) or deletes (`release_allocation`) the Allocation; nothing else may create or delete
an Allocation. `compute.reconciler.check_host_usage` recomputes them from the Allocation rows
and corrects (and audits) any drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, FloatField, QuerySet
from django.db.models.functions import Cast

from compute.models import Allocation, Host, Instance
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
    in_policy = Host.objects.filter(
        state=Host.State.ENABLED, zone__jurisdiction__in=request.jurisdictions
    )
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
    for candidate in candidates(request)[:CANDIDATES_TRIED]:
        host = Host.objects.select_for_update().get(pk=candidate.pk)
        if host.state == Host.State.ENABLED and _fits(host, request):
            Allocation.objects.create(
                instance=instance,
                host=host,
                vcpus=request.vcpus,
                memory_mb=request.memory_mb,
                disk_gb=request.disk_gb,
            )
            Host.objects.filter(pk=host.pk).update(
                allocated_vcpus=F("allocated_vcpus") + request.vcpus,
                allocated_memory_mb=F("allocated_memory_mb") + request.memory_mb,
                allocated_disk_gb=F("allocated_disk_gb") + request.disk_gb,
            )
            host.allocated_vcpus += request.vcpus
            host.allocated_memory_mb += request.memory_mb
            host.allocated_disk_gb += request.disk_gb
            return host
    raise NoValidHost(
        "No valid host was found: no enabled host in your allowed zones has room for "
        f"{request.vcpus} vCPU, {request.memory_mb} MiB RAM and {request.disk_gb} GiB disk.",
        details={
            "vcpus": request.vcpus,
            "memory_mb": request.memory_mb,
            "disk_gb": request.disk_gb,
        },
    )


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
