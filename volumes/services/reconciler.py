"""The volumes pools' side of the reconciler (DESIGN §2, issue 11 item 6): storage nobody
accounts for. Every file in a host's volumes pool is either the storage of a live volume of
that host (`volume-<id>`, hosts.naming) or an orphan: the file of a deleted volume (its erase
failed half-way, or someone restored it), of a volume the database does not know or places
on another host, or a name Andromède never gives. Orphans are reported (OrphanReport of kind
`volume`, named `<pool>/<file>`; a `host.orphan` audit event on first sight) and never
deleted: they may be a tenant's data, and only an operator can tell (the policy for instance
disks, compute.services.reconciler_storage)."""

from __future__ import annotations

import logging

from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import ONBOARDED_STATES, Host, OrphanReport
from hosts.services.orphans import orphan_report
from hypervisor.base import DriverError, Hypervisor, NotFound
from iaas.audit import Actor
from volumes.models import Volume
from volumes.states import VolumeStatus

logger = logging.getLogger(__name__)
RECONCILER = Actor.system("reconciler")
NOT_OURS = "not a volume Andromède makes"


def _reasons(host: Host, names: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """Why each name nobody accounts for is an orphan (names of live volumes are absent)."""
    parsed = {name: naming.parse_volume(name) for name in names}
    ids = {p.owner_id for p in parsed.values() if p and p.kind == naming.VolumeKind.VOLUME}
    known = {
        v.pk: v for v in Volume.objects.filter(pk__in=ids).only("pk", "host", "status", "tenant")
    }
    reasons: dict[str, tuple[str, dict[str, str]]] = {}
    for name, owner in parsed.items():
        if owner is None or owner.kind != naming.VolumeKind.VOLUME:
            reasons[name] = (NOT_OURS, {})
            continue
        volume = known.get(owner.owner_id)
        if volume is None:
            reasons[name] = ("no volume has this id", {})
        elif volume.host_id != host.pk:
            reasons[name] = (
                "its volume lies on another host",
                {"tenant_id": str(volume.tenant_id)},
            )
        elif volume.status == VolumeStatus.DELETED:
            reasons[name] = ("its volume was deleted", {"tenant_id": str(volume.tenant_id)})
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
