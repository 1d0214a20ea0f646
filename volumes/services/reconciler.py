"""The volumes pools' side of the reconciler (DESIGN §2, issue 11 item 6): storage nobody
accounts for. Every file in a host's volumes pool is either the storage of a live volume or
volume snapshot of that host (`volume-<id>`, `volsnap-<id>`, hosts.naming) or an orphan: the
file of a deleted volume or snapshot (its erase failed half-way, or someone restored it), of
one the database does not know or places on another host, or a name Andromède never gives.
Orphans are reported (OrphanReport of kind `volume`, named `<pool>/<file>`; a `host.orphan`
audit event on first sight) and never deleted: they may be a tenant's data, and only an
operator can tell (the policy for instance disks, compute.services.reconciler_storage)."""

from __future__ import annotations

import logging
from typing import Any

from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import ONBOARDED_STATES, Host, OrphanReport
from hosts.services.orphans import orphan_report
from hypervisor.base import DriverError, Hypervisor, NotFound
from iaas.audit import Actor
from volumes.models import Volume, VolumeSnapshot

logger = logging.getLogger(__name__)
RECONCILER = Actor.system("reconciler")
NOT_OURS = "not a volume Andromède makes"
#: What the volumes pool holds: volumes and volume snapshots (the noun a reason uses).
_KINDS = {naming.VolumeKind.VOLUME: "volume", naming.VolumeKind.VOLUME_SNAPSHOT: "snapshot"}


def _reasons(host: Host, names: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """Why each name nobody accounts for is an orphan (names of live volumes and volume
    snapshots are absent)."""
    parsed = {name: naming.parse_volume(name) for name in names}
    owners = {kind: {p.owner_id for p in parsed.values() if p and p.kind == kind}
              for kind in _KINDS}  # fmt: skip
    known: dict[naming.VolumeKind, dict[Any, Any]] = {
        naming.VolumeKind.VOLUME: {
            v.pk: v
            for v in Volume.objects.filter(pk__in=owners[naming.VolumeKind.VOLUME]).only(
                "pk", "host", "status", "tenant"
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
        elif held.host_id != host.pk:
            reasons[name] = (f"its {noun} lies on another host", {"tenant_id": str(held.tenant_id)})
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
    return sum(
        orphan_report(
            actor=actor,
            host=host,
            kind=OrphanReport.Kind.VOLUME,
            name=f"{pool}/{name}",
            details={"pool": pool, "volume": name, "reason": reason, **extra},
        )
        for name, (reason, extra) in sorted(_reasons(host, names).items())
    )


def reconcile_volume_pools() -> dict[str, int]:
    """One round over every onboarded host that is not down: {host name: new orphans}."""
    hosts = Host.objects.filter(state__in=ONBOARDED_STATES).exclude(state=Host.State.DOWN)
    return {host.name: check_volume_pool(hypervisor_for(host), host) for host in hosts}
