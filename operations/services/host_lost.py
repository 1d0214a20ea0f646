"""Operations of a lost host: the host is marked down (its heartbeats stopped) and no worker
holds its operations any more (their lease expired, or none was ever taken). Each is failed
with a reason its owner can act on, its target released like an abandoned one's, and the
failure audited as `operation.host_lost`. Nothing is sent to another host: moving a
resource off a lost host is an operator's decision (the host may come back with the guest
still running on it)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hosts.models import Host
from iaas.audit import audit_record
from operations.models import Operation
from operations.services.deadlines import SWEEPER
from operations.services.outcomes import release_abandoned

HOST_LOST_REASON = (
    "The host running this operation stopped answering (marked down) and its worker is "
    "gone; the operation was stopped and will not be retried on another host. Retry it once "
    "the host is back, or delete the resource and create it again."
)


def _orphaned_on(host_names: list[str]) -> Q:
    """Queued, or running under a lease nobody renews any more, on one of `host_names`."""
    return Q(host_name__in=host_names) & (
        Q(status=Operation.Status.QUEUED)
        | Q(status=Operation.Status.RUNNING, lease_expires_at__lt=timezone.now())
    )


def fail_operations_of_lost_hosts() -> list[str]:
    """Fail every operation of a down host that no worker holds (see the module docstring).
    A worker that comes back takes nothing of these (its lease is a conditional update on
    the status). Returns the failed operations' ids."""
    down = list(Host.objects.filter(state=Host.State.DOWN).values_list("name", flat=True))
    if not down:
        return []
    failed = []
    for operation in Operation.objects.filter(_orphaned_on(down)):
        with transaction.atomic():
            changed = Operation.objects.filter(
                _orphaned_on([operation.host_name]), pk=operation.pk
            ).update(
                status=Operation.Status.FAILED,
                error=HOST_LOST_REASON,
                finished_at=timezone.now(),
                lease_expires_at=None,
            )
            if not changed:  # a worker took it, or it finished, meanwhile
                continue
            release_abandoned(operation, HOST_LOST_REASON)
            audit_record(
                actor=SWEEPER,
                action="operation.host_lost",
                tenant_id=operation.tenant_id,
                target_type="operation",
                target_id=str(operation.pk),
                outcome="failed",
                # No host name: tenants export their own events (review L2).
                details={
                    "action": operation.action,
                    "target_type": operation.target_type,
                    "target_id": str(operation.target_id),
                    "last_status": operation.status,
                },
            )
        failed.append(str(operation.pk))
    return failed
