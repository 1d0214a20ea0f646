"""The volumes pools' side of the reconciler (DESIGN §2, issue 11 item 6): storage nobody
accounts for. Every file in a host's volumes pool is either the storage of a live volume or
volume snapshot of that host (`volume-<id>`, `volsnap-<id>`, hosts.naming) or an orphan: the
file of a deleted volume or snapshot (its erase failed half-way, or someone restored it), of
one the database does not know or places on another host, or a name Andromède never gives.
Orphans are reported (OrphanReport of kind `volume`, named `<pool>/<file>`; a `host.orphan`
audit event on first sight) and never deleted: they may be a tenant's data, and only an
operator can tell (the policy for instance disks, compute.services.reconciler_storage).

A Ceph cluster's RADOS pool is shared by its zone's hosts: it is listed once a round, from
the first enabled host of the zone (its key and rbd pool ensured there first, as a worker
does), and its images are checked against the cluster's live volumes; its orphans are filed
under that host, named `<rbd pool>/<image>`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hosts import naming
from hosts.ceph import ensure_ceph_pool
from hosts.hypervisors import hypervisor_for
from hosts.models import ONBOARDED_STATES, CephCluster, Host, OrphanReport
from hosts.services.ceph import ceph_cluster_space_record
from hosts.services.orphans import orphan_report
from hypervisor.base import DriverError, Hypervisor, NotFound
from iaas.audit import Actor
from volumes.models import Volume, VolumeSnapshot
from volumes.services.placement import NoValidHost, ceph_worker_host

logger = logging.getLogger(__name__)
RECONCILER = Actor.system("reconciler")
NOT_OURS = "not a volume Andromède makes"
#: What the volumes pool holds: volumes and volume snapshots (the noun a reason uses).
_KINDS = {naming.VolumeKind.VOLUME: "volume", naming.VolumeKind.VOLUME_SNAPSHOT: "snapshot"}


def _reasons(
    names: list[str], here: Callable[[Any], bool], elsewhere: str
) -> dict[str, tuple[str, dict[str, str]]]:
    """Why each name nobody accounts for is an orphan (names of live volumes and volume
    snapshots are absent). `here(volume or snapshot)`: whether it is stored in the pool
    the names come from; `elsewhere` ends the reason when not ("lies on another host")."""
    parsed = {name: naming.parse_volume(name) for name in names}
    owners = {kind: {p.owner_id for p in parsed.values() if p and p.kind == kind}
              for kind in _KINDS}  # fmt: skip
    known: dict[naming.VolumeKind, dict[Any, Any]] = {
        naming.VolumeKind.VOLUME: {
            v.pk: v
            for v in Volume.objects.filter(pk__in=owners[naming.VolumeKind.VOLUME]).only(
                "pk", "host", "ceph_cluster", "status", "tenant"
            )
        },
        naming.VolumeKind.VOLUME_SNAPSHOT: {
            s.pk: s
            for s in VolumeSnapshot.objects.filter(
                pk__in=owners[naming.VolumeKind.VOLUME_SNAPSHOT]
            ).only("pk", "host", "status", "tenant")
        },
    }
    reasons: dict[str, tuple[str, dict[str, str]]] = {}
    for name, owner in parsed.items():
        if owner is None or owner.kind not in _KINDS:
            reasons[name] = (NOT_OURS, {})
            continue
        noun = _KINDS[owner.kind]
        held = known[owner.kind].get(owner.owner_id)
        if held is None:
            reasons[name] = (f"no {noun} has this id", {})
        elif not here(held):
            reasons[name] = (f"its {noun} {elsewhere}", {"tenant_id": str(held.tenant_id)})
        elif held.status == "deleted":
            reasons[name] = (f"its {noun} was deleted", {"tenant_id": str(held.tenant_id)})
    return reasons


def check_volume_pool(hv: Hypervisor, host: Host, actor: Actor = RECONCILER) -> int:
    """Report what in `host`'s volumes pool no live volume accounts for; the number of
    orphans seen for the first time. A host without a volumes pool has nothing to report; a
    host that cannot list it is skipped (the next round tries again)."""
    pool = naming.storage_pool(host.name, "volumes")
    try:
        names = [info.name for info in hv.list_storage_volumes(pool)]
    except NotFound:
        return 0
    except DriverError as exc:
        logger.warning("host %s: volumes pool not checked: %s", host.name, exc)
        return 0
    reasons = _reasons(names, lambda held: held.host_id == host.pk, "lies on another host")
    return _report(actor, host, pool, reasons, {})


def check_ceph_cluster(cluster: CephCluster, actor: Actor = RECONCILER) -> int:
    """Record the size and free space of `cluster`'s RADOS pool (placement reads them) and
    report what in it no live volume of the cluster accounts for; the number of orphans
    seen for the first time. A zone without an enabled host, or a
    cluster that cannot be listed from it, is skipped (the next round tries again)."""
    try:
        acting = ceph_worker_host(cluster)  # the host its volumes' operations run from
    except NoValidHost:
        return 0
    hv = hypervisor_for(acting)
    try:
        pool = ensure_ceph_pool(hv, acting, cluster)
        space = hv.pool_info(pool)
        names = [info.name for info in hv.list_storage_volumes(pool)]
    except DriverError as exc:
        logger.warning("Ceph cluster %s: not checked from %s: %s", cluster.name, acting.name, exc)
        return 0
    ceph_cluster_space_record(
        cluster, capacity=space.capacity_bytes, available=space.available_bytes
    )
    reasons = _reasons(
        names,
        lambda held: getattr(held, "ceph_cluster_id", None) == cluster.pk,
        "is not stored on this cluster",
    )
    return _report(actor, acting, pool, reasons, {"ceph_cluster": cluster.name})


def _report(
    actor: Actor,
    host: Host,
    pool: str,
    reasons: dict[str, tuple[str, dict[str, str]]],
    where: dict[str, str],
) -> int:
    return sum(
        orphan_report(
            actor=actor,
            host=host,
            kind=OrphanReport.Kind.VOLUME,
            name=f"{pool}/{name}",
            details={"pool": pool, "volume": name, "reason": reason, **where, **extra},
        )
        for name, (reason, extra) in sorted(reasons.items())
    )


def reconcile_volume_pools() -> dict[str, int]:
    """One round over every onboarded host that is not down, then every Ceph cluster:
    {host name or `ceph:<cluster name>`: new orphans}."""
    hosts = Host.objects.filter(state__in=ONBOARDED_STATES).exclude(state=Host.State.DOWN)
    found = {host.name: check_volume_pool(hypervisor_for(host), host) for host in hosts}
    for cluster in CephCluster.objects.select_related("zone"):
        found[f"ceph:{cluster.name}"] = check_ceph_cluster(cluster)
    return found
