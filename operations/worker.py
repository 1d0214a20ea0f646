"""What a host's worker does with an operation (DESIGN §2 step 4-5): lease it, then run the
handler its action registered (operations.registry) on the target it names."""

from __future__ import annotations

import logging
import uuid

from iaas.request_context import reset_request_id, set_request_id
from operations import registry
from operations.models import Operation
from operations.services.runs import LeaseLost, finish, lease, worker_id

logger = logging.getLogger(__name__)


def run_operation(operation_id: uuid.UUID | str) -> str:
    """Lease and run one operation. Returns its final status, 'skipped' when another worker
    holds it or it already finished, or 'lost' when it was taken from this run meanwhile
    (its outcome then is the sweeper's or the new holder's). An action nobody registered
    fails at once."""
    operation = lease(operation_id, worker_id())
    if operation is None:
        return "skipped"
    token = set_request_id(operation.request_id or f"op-{operation.pk}")
    try:
        action = registry.find_action(operation.action)
        if action is None:
            finish(operation, error=f"unknown action {operation.action}")
            return Operation.Status.FAILED
        target = registry.target_type(action.target_type).load(operation.target_id)
        action.handler(operation, target)
        return operation.status
    except LeaseLost as exc:
        logger.warning("%s: its outcome was not written", exc)
        return "lost"
    finally:
        reset_request_id(token)
