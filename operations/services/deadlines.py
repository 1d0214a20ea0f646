"""Operations that will never finish: past OPERATION_DEADLINE they are failed with a reason,
and their target released (DESIGN: operations are never stuck)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from iaas.audit import Actor, audit_record
from operations.models import Operation
from operations.services.outcomes import release_abandoned

SWEEPER = Actor.system("reconciler")
_UNFINISHED = [Operation.Status.QUEUED, Operation.Status.RUNNING]


def fail_overdue_operations() -> list[str]:
    """Fail every operation unfinished OPERATION_DEADLINE after its creation; its action and
    its target type each undo what the abandoned run leaves (`abandon`). Audited as
    `operation.stuck`. Returns the failed operations' ids."""
    horizon = timezone.now() - settings.OPERATION_DEADLINE
    failed = []
    for operation in Operation.objects.filter(status__in=_UNFINISHED, created_at__lt=horizon):
        reason = (
            f"Not finished within {int(settings.OPERATION_DEADLINE.total_seconds())} s "
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
