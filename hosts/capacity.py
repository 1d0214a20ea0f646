"""What a host offers placement and what its allocations hold, resource by resource — the
figures compute's scheduler compares (physical minus reserved, times the allocation ratio), as
the operator console draws them and /metrics exports them."""

from __future__ import annotations

from hosts.models import Host


def schedulable(physical: int, reserved: int, ratio: float) -> int:
    return max(int((physical - reserved) * ratio), 0)


def capacity_and_allocated(host: Host) -> list[tuple[str, int, int]]:
    """(resource, capacity, allocated) of vcpus, memory_mb and disk_gb."""
    return [
        ("vcpus", schedulable(host.cpus, host.reserved_cpus, host.cpu_allocation_ratio),
         host.allocated_vcpus),
        ("memory_mb", schedulable(host.memory_mb, host.reserved_memory_mb,
                                  host.ram_allocation_ratio), host.allocated_memory_mb),
        ("disk_gb", schedulable(host.disk_gb, host.reserved_disk_gb, host.disk_allocation_ratio),
         host.allocated_disk_gb),
    ]  # fmt: skip
