"""Placement (DESIGN §2): filters, a weigher, and an atomic claim.

Filters run in SQL: the host is enabled, its zone's jurisdiction is in the tenant's
residency policy (and is the requested zone, if any), its architecture matches, and its free
capacity — (capacity - reserved) x allocation ratio - what allocations already hold — fits
the request. The weigher orders by free RAM (spread) or by least free RAM (pack). The chosen
host's row is then locked and its capacity re-checked before the `Allocation` is inserted, so
two concurrent placements can never overcommit a host.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, FloatField, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Cast, Coalesce

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


def _used(field: str) -> Coalesce:
    per_host = (
        Allocation.objects.filter(host=OuterRef("pk"))
        .values("host")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(per_host, output_field=IntegerField()), Value(0))


def _free(capacity: str, reserved: str, ratio: str, used: str) -> object:
    return Cast(F(capacity) - F(reserved), FloatField()) * F(ratio) - Cast(F(used), FloatField())


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
        used_vcpus=_used("vcpus"), used_memory=_used("memory_mb"), used_disk=_used("disk_gb")
    ).annotate(
        free_vcpus=_free("cpus", "reserved_cpus", "cpu_allocation_ratio", "used_vcpus"),
        free_memory=_free("memory_mb", "reserved_memory_mb", "ram_allocation_ratio", "used_memory"),
        free_disk=_free("disk_gb", "reserved_disk_gb", "disk_allocation_ratio", "used_disk"),
    )
    hosts = hosts.filter(
        free_vcpus__gte=request.vcpus,
        free_memory__gte=request.memory_mb,
        free_disk__gte=request.disk_gb,
    )
    order = "-free_memory" if request.strategy == "spread" else "free_memory"
    return hosts.order_by(order, "name")


def _fits(host: Host, request: PlacementRequest) -> bool:
    used = Allocation.objects.filter(host=host).aggregate(
        vcpus=Coalesce(Sum("vcpus"), 0),
        memory=Coalesce(Sum("memory_mb"), 0),
        disk=Coalesce(Sum("disk_gb"), 0),
    )
    return (
        (host.cpus - host.reserved_cpus) * host.cpu_allocation_ratio - used["vcpus"]
        >= request.vcpus
        and (host.memory_mb - host.reserved_memory_mb) * host.ram_allocation_ratio - used["memory"]
        >= request.memory_mb
        and (host.disk_gb - host.reserved_disk_gb) * host.disk_allocation_ratio - used["disk"]
        >= request.disk_gb
    )


def claim(instance: Instance, request: PlacementRequest) -> Host:
    """Choose a host and insert the instance's Allocation on it, in the caller's transaction.
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
