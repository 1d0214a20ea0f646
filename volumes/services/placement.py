"""Where a volume goes (DESIGN §6, §8): a directory-backed volume lives in the volumes pool
of one host, an enabled host of a zone whose jurisdiction the tenant's residency allows
(and the zone asked for, if any), with room for it as the host last reported.

Free space is the pool's `available_bytes` that onboarding and heartbeats record: a filter,
not a claim (volumes are thin qcow2 files that grow as the tenant writes; no allocation
ledger holds their space, unlike instances' `Allocation`). The weigher spreads: the pool
with the most free space first.
"""

from __future__ import annotations

from hosts.models import Host, StoragePool
from iaas.errors import ConflictError
from images.services.stores import ResidencyUnsatisfiable
from tenants.models import Tenant

GIB = 1024**3


class NoValidHost(ConflictError):
    code = "no_valid_host"


def volume_host_choose(tenant: Tenant, *, size_gb: int, zone: str | None = None) -> Host:
    """The host a new volume of `size_gb` GiB goes to. ResidencyUnsatisfiable (409) when no
    enabled host lies in an allowed jurisdiction (and zone); NoValidHost (409) when none of
    them has a volumes pool with room."""
    allowed = tuple(tenant.residency)
    in_policy = Host.objects.filter(state=Host.State.ENABLED, zone__jurisdiction__in=allowed)
    if zone:
        in_policy = in_policy.filter(zone__name=zone)
    if not in_policy.exists():
        raise ResidencyUnsatisfiable(
            f"No available zone is allowed by your residency policy ({', '.join(allowed)})"
            + (f" in zone {zone}" if zone else "")
            + ". Ask an operator, or change the policy.",
            details={"residency": list(allowed), "zone": zone},
        )
    pool = (
        StoragePool.objects.filter(
            role=StoragePool.Role.VOLUMES,
            backend=StoragePool.Backend.DIR,
            host__in=in_policy,
            available_bytes__gte=size_gb * GIB,
        )
        .select_related("host__zone")
        .order_by("-available_bytes", "host__name")
        .first()
    )
    if pool is None:
        raise NoValidHost(
            "No valid host was found: no enabled host in your allowed zones has room for a "
            f"{size_gb} GiB volume.",
            details={"size_gb": size_gb, "zone": zone},
        )
    return pool.host
