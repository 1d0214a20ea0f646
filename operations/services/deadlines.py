"""Operations that will never finish: past their deadline they are failed with a reason,
and their target released (DESIGN: operations are never stuck).

The deadline is OPERATION_DEADLINE after the operation's creation, or longer for one that
copies data, whose time grows with its size: such an operation carries its own
`params["deadline_seconds"]` (copy_deadline_params), never shorter than the default."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from iaas.audit import Actor, audit_record
from operations.models import Operation
from operations.services.outcomes import release_abandoned

SWEEPER = Actor.system("reconciler")
_UNFINISHED = [Operation.Status.QUEUED, Operation.Status.RUNNING]


def copy_deadline_params(size_gb: int) -> dict[str, Any]:
    """The operation params that give a copy of `size_gb` GiB room to finish: the default
    deadline plus settings.COPY_SECONDS_PER_GIB per GiB (a floor on the throughput expected
    of a host's storage: past it the copy is taken as stuck)."""
    extra = size_gb * int(settings.COPY_SECONDS_PER_GIB)
    return {"deadline_seconds": int(settings.OPERATION_DEADLINE.total_seconds()) + extra}


def operation_deadline(operation: Operation) -> timedelta:
    """How long `operation` may run after its creation (never less than the default)."""
    own = timedelta(seconds=int((operation.params or {}).get("deadline_seconds") or 0))
    return max(settings.OPERATION_DEADLINE, own)


def fail_overdue_operations() -> list[str]:
    """Fail every operation unfinished its deadline after its creation (operation_deadline);
    its action and its target type each undo what the abandoned run leaves (`abandon`).
    Audited as `operation.stuck`. Returns the failed operations' ids."""
    now = timezone.now()
    horizon = now - settings.OPERATION_DEADLINE  # no deadline is shorter: the candidates
    failed = []
    for operation in Operation.objects.filter(status__in=_UNFINISHED, created_at__lt=horizon):
        deadline = operation_deadline(operation)
        if operation.created_at > now - deadline:
            continue  # a long copy, still within its own deadline
        reason = (
            f"Not finished within {int(deadline.total_seconds())} s "
            f"(last status {operation.status}); stopped by the reconciler."
        )
        with transaction.atomic():
            changed = Operation.objects.filter(pk=operation.pk, status__in=_UNFINISHED).update(
                status=Operation.Status.FAILED, error=reason, finished_at=timezone.now()
            )
            if not changed:  # finished meanwhile
                continue
            release_abandoned(operation, reason)
            audit_record(
                actor=SWEEPER,
                action="operation.stuck",
                tenant_id=operation.tenant_id,
                target_type="operation",
                target_id=str(operation.pk),
                outcome="failed",
                details={"action": operation.action, "reason": reason},
            )
        failed.append(str(operation.pk))
    return failed
