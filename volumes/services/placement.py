"""Where a volume goes (DESIGN §6, §8): a directory-backed volume lives in the volumes pool
of one host, an enabled host of a zone whose jurisdiction the tenant's residency allows
(and the zone asked for, if any), with room for it as the host last reported. An rbd volume
lives in the Ceph cluster of such a zone (hosts.CephCluster), shared by the zone's hosts;
its operations run on one of them (`ceph_worker_host`).

Free space is the pool's `available_bytes` that onboarding and heartbeats record: a filter,
not a claim (volumes are thin qcow2 files that grow as the tenant writes; no allocation
ledger holds their space, unlike instances' `Allocation`). The weigher spreads: the pool
with the most free space first.
"""

from __future__ import annotations

from django.db.models import F, Q

from hosts.models import CephCluster, Host, StoragePool
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


def _residency_refusal(tenant: Tenant, zone: str | None) -> ResidencyUnsatisfiable:
    allowed = tuple(tenant.residency)
    return ResidencyUnsatisfiable(
        f"No available zone is allowed by your residency policy ({', '.join(allowed)})"
        + (f" in zone {zone}" if zone else "")
        + ". Ask an operator, or change the policy.",
        details={"residency": list(allowed), "zone": zone},
    )


def ceph_cluster_choose(tenant: Tenant, *, size_gb: int, zone: str | None = None) -> CephCluster:
    """The Ceph cluster a new rbd volume of `size_gb` GiB goes to: one of a zone the
    tenant's residency allows (and `zone`, if asked) that has an enabled host to run its
    operations and room for it as the reconciler last measured (a cluster never measured
    yet passes); the most free space first. ResidencyUnsatisfiable (409) when no enabled
    host lies in an allowed jurisdiction (and zone); NoValidHost (409) when none of those
    zones has a Ceph cluster with room."""
    allowed = tuple(tenant.residency)
    hosts = Host.objects.filter(state=Host.State.ENABLED, zone__jurisdiction__in=allowed)
    if zone:
        hosts = hosts.filter(zone__name=zone)
    if not hosts.exists():
        raise _residency_refusal(tenant, zone)
    cluster = (
        CephCluster.objects.filter(zone__in=hosts.values("zone"))
        .filter(Q(available_bytes__isnull=True) | Q(available_bytes__gte=size_gb * GIB))
        .select_related("zone")
        .order_by(F("available_bytes").desc(nulls_last=True), "name")
        .first()
    )
    if cluster is None:
        raise NoValidHost(
            "No valid host was found: no allowed zone with an enabled host has a Ceph "
            f"cluster with room for a {size_gb} GiB volume of this type.",
            details={"size_gb": size_gb, "zone": zone, "backend": "rbd"},
        )
    return cluster


def ceph_worker_host(cluster: CephCluster) -> Host:
    """The host whose worker runs operations on `cluster`'s volumes that no instance holds
    (create, delete, an extend while detached): an enabled host of its zone (the first by
    name: any reaches the cluster). NoValidHost (409) when the zone has none now."""
    host = (
        Host.objects.filter(zone_id=cluster.zone_id, state=Host.State.ENABLED)
        .order_by("name")
        .first()
    )
    if host is None:
        raise NoValidHost(
            f"No enabled host in zone {cluster.zone.name} can reach Ceph cluster "
            f"{cluster.name} now; try again later.",
            details={"zone": cluster.zone.name},
        )
    return host
