"""The reconciler (DESIGN §2): compares each host with the database, periodically.

- Power-state drift: an idle instance whose guest powered itself off becomes `stopped`
  (and one started behind our back becomes `active`); recorded as audit events.
- A domain the database does not know is an orphan: reported (OrphanReport, audit event on
  first sight), never deleted; so is a volume (compute.services.reconciler_storage).
- An idle active or stopped instance whose domain is missing goes to `error` with a fault.
- Cached images of deleted images that no instance on the host uses any more, and copies
  left by failed snapshots, are removed from the host (compute.services.reconciler_storage).
- Each host's usage columns (`Host.allocated_*`, kept by the scheduler) are recomputed from
  the Allocation rows; a host whose columns disagree is corrected, with an audit event, so
  the counters can never drift silently.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.db.models import Sum

from compute.models import Allocation, Instance, Migration
from compute.services.reconciler_storage import arriving_instances, check_host_storage
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import ONBOARDED_STATES, Host, OrphanReport
from hosts.services.orphans import orphan_report
from hypervisor.base import DriverError, PowerState
from iaas.audit import Actor, audit_record

logger = logging.getLogger(__name__)
RECONCILER = Actor.system("reconciler")
_RUNNING = {PowerState.RUNNING, PowerState.PAUSED, PowerState.BLOCKED}


def reconcile_host(host: Host) -> dict[str, int]:
    """One pass over one host. Returns counts of what it changed or found."""
    counts = {"drift": 0, "missing": 0, "orphans": 0, "volumes_removed": 0}
    hv = hypervisor_for(host)
    try:
        domains = {d.name: d for d in hv.list_domains()}
    except DriverError as exc:
        logger.warning("reconciler: host %s unreachable: %s", host.name, exc)
        return counts
    storage = check_host_storage(hv, host, RECONCILER)
    counts["volumes_removed"] = storage["volumes_removed"]
    counts["orphans"] += storage["volume_orphans"]
    live = Instance.objects.filter(host=host).exclude(
        status__in=[Instance.Status.DELETED, Instance.Status.BUILDING]
    )
    known = set(
        Instance.objects.filter(host=host)
        .exclude(status=Instance.Status.DELETED)
        .values_list("pk", flat=True)
    ) | arriving_instances(host)
    for instance in live.filter(task_state__isnull=True):
        domain = domains.get(naming.domain(instance.pk))
        if domain is None:
            if instance.status in (Instance.Status.ACTIVE, Instance.Status.STOPPED):
                counts["missing"] += _mark_missing(instance, host)
            continue
        running = domain.power_state in _RUNNING
        if instance.status == Instance.Status.ACTIVE and not running:
            counts["drift"] += _drift(
                instance, Instance.Status.ACTIVE, Instance.Status.STOPPED, domain.power_state
            )
        elif instance.status == Instance.Status.STOPPED and running:
            counts["drift"] += _drift(
                instance, Instance.Status.STOPPED, Instance.Status.ACTIVE, domain.power_state
            )
        elif instance.power_state != domain.power_state:
            Instance.objects.filter(pk=instance.pk).update(power_state=domain.power_state)
    for name, domain in domains.items():
        if naming.parse_domain(name) in known:
            continue
        counts["orphans"] += orphan_report(
            actor=RECONCILER,
            host=host,
            kind=OrphanReport.Kind.DOMAIN,
            name=name,
            details={"power_state": domain.power_state, "tenant_id": domain.tenant_id},
        )
    return counts


def _drift(instance: Instance, expected: str, new: str, power_state: str) -> int:
    with transaction.atomic():
        changed = Instance.objects.filter(
            pk=instance.pk, status=expected, task_state__isnull=True
        ).update(status=new, power_state=power_state)
        if changed:
            audit_record(
                actor=RECONCILER,
                action="instance.power_drift",
                tenant_id=instance.tenant_id,
                target=instance,
                details={"from": expected, "to": new, "power_state": power_state},
            )
    return changed


def _mark_missing(instance: Instance, host: Host) -> int:
    fault = "The virtual machine is missing on its host; an operator has been told."
    with transaction.atomic():
        changed = Instance.objects.filter(pk=instance.pk, task_state__isnull=True).update(
            status=Instance.Status.ERROR, fault=fault, power_state=""
        )
        if changed:
            audit_record(
                actor=RECONCILER,
                action="instance.missing",
                tenant_id=instance.tenant_id,
                target=instance,
                details={"host": host.name},
            )
    return changed


_USAGE = (
    ("allocated_vcpus", "vcpus"),
    ("allocated_memory_mb", "memory_mb"),
    ("allocated_disk_gb", "disk_gb"),
)


def _allocated(host_ids: list[uuid.UUID] | None = None) -> dict[uuid.UUID, dict[str, int]]:
    """Sums per host of the Allocation rows and of the claims of migrations in progress
    (compute.models.Migration) on their target (hosts without any are absent)."""
    allocations = Allocation.objects.all()
    claims = Migration.objects.filter(status=Migration.Status.CLAIMED)
    if host_ids is not None:
        allocations = allocations.filter(host_id__in=host_ids)
        claims = claims.filter(target_host_id__in=host_ids)
    totals: dict[uuid.UUID, dict[str, int]] = {}
    for rows in (
        allocations.values_list("host_id"),
        claims.values_list("target_host_id"),
    ):
        sums = rows.annotate(Sum("vcpus"), Sum("memory_mb"), Sum("disk_gb"))
        for host_id, vcpus, memory_mb, disk_gb in sums:
            total = totals.setdefault(host_id, {col: 0 for col, _f in _USAGE})
            total["allocated_vcpus"] += vcpus or 0
            total["allocated_memory_mb"] += memory_mb or 0
            total["allocated_disk_gb"] += disk_gb or 0
    return totals


def check_host_usage() -> list[str]:
    """Correct every host whose `allocated_*` columns disagree with its Allocation rows;
    each correction is audited as `host.usage_corrected`. Returns the corrected hosts' names.

    A first pass compares without locks; a host that looks wrong is then locked (the lock
    the scheduler takes to change its columns) and compared again, so a placement or release
    in flight is never mistaken for drift."""
    zero = {col: 0 for col, _f in _USAGE}
    expected = _allocated()
    suspects = [
        host.pk
        for host in Host.objects.only("pk", *(col for col, _f in _USAGE))
        if {col: getattr(host, col) for col, _f in _USAGE} != expected.get(host.pk, zero)
    ]
    corrected = []
    for host_id in suspects:
        with transaction.atomic():
            host = Host.objects.select_for_update().get(pk=host_id)
            actual = _allocated([host_id]).get(host_id, zero)
            recorded = {col: getattr(host, col) for col, _f in _USAGE}
            if recorded == actual:
                continue
            Host.objects.filter(pk=host_id).update(**actual)
            audit_record(
                actor=RECONCILER,
                action="host.usage_corrected",
                target=host,
                details={"recorded": recorded, "allocations": actual},
            )
            logger.warning(
                "reconciler: host %s usage corrected from %s to %s", host.name, recorded, actual
            )
            corrected.append(host.name)
    return corrected


def reconcile_all() -> dict[str, object]:
    """One reconciler round: every host that is not down, then the usage counters. (Stuck
    operations are the operations sweeper's: operations.services.deadlines.)"""
    reachable = Host.objects.filter(state__in=ONBOARDED_STATES).exclude(state=Host.State.DOWN)
    per_host = {host.name: reconcile_host(host) for host in reachable}
    return {"hosts": per_host, "host_usage_corrected": check_host_usage()}
