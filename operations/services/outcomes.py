"""How an operation ends, for any target type: the outcome is written on the target (through
its registered `settle`), the operation finished, and a failure audited — in one
transaction."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from iaas.audit import audit_record
from operations import registry
from operations.messages import tenant_text
from operations.models import Operation
from operations.services.runs import finish, worker_actor

logger = logging.getLogger(__name__)


def succeed(operation: Operation, **target_changes: Any) -> None:
    """The operation succeeded: its target's fault is cleared and `target_changes` applied
    (say status=active)."""
    target_type = registry.target_type(operation.target_type)
    with transaction.atomic():
        target_type.settle(operation.target_id, "", target_changes)
        finish(operation)


def release_abandoned(operation: Operation, reason: str) -> None:
    """An operation given up on by the sweeper (past its deadline, its host lost): its action
    and its target type each undo what the abandoned run leaves, `reason` as the fault."""
    action = registry.find_action(operation.action)
    if action is not None and action.abandon is not None:
        action.abandon(operation, reason)
    target_type = registry.find_target_type(operation.target_type)
    if target_type is not None:
        target_type.abandon(operation, reason)


def fail(
    operation: Operation, target: object, verb: str, exc: Exception, **target_changes: Any
) -> None:
    """A step failed: tell the user why (the target's fault: "The <verb> failed: …", without
    host names, paths or URIs: operations.messages),
    apply `target_changes` (say status=error), fail the operation and audit it as
    `<target type>.<verb>`, outcome failed, labelled with `str(target)`."""
    logger.exception("%s of %s %s failed", verb, operation.target_type, operation.target_id)
    fault = f"The {verb} failed: {tenant_text(exc)}"
    target_type = registry.target_type(operation.target_type)
    with transaction.atomic():
        target_type.settle(operation.target_id, fault[:2000], target_changes)
        finish(operation, error=fault)
        audit_record(
            actor=worker_actor(),
            action=f"{operation.target_type}.{verb}",
            tenant_id=operation.tenant_id,
            target_type=operation.target_type,
            target_id=str(operation.target_id),
            target_label=str(target),
            outcome="failed",
            details={"error": tenant_text(exc), "operation": str(operation.pk)},
        )
