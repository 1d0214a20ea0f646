"""What a host's worker does with an operation (DESIGN §2 step 4-5): lease it, then run
the handler of its action. The handlers live beside this module (lifecycle, resize,
snapshot) and share compute.services.worker.steps."""

from __future__ import annotations

from compute.models import Instance, Operation
from compute.services import operations
from compute.services.worker import lifecycle, resize, snapshot
from compute.services.worker.steps import worker_id
from iaas.request_context import reset_request_id, set_request_id

__all__ = ["run_operation"]

_HANDLERS = {
    "instance.create": lifecycle.run_create,
    "instance.delete": lifecycle.run_delete,
    "instance.start": lifecycle.run_start,
    "instance.stop": lifecycle.run_stop,
    "instance.reboot": lifecycle.run_reboot,
    "instance.rebuild": lifecycle.run_rebuild,
    "instance.resize": resize.run_resize,
    "instance.revert_resize": resize.run_revert_resize,
    "instance.snapshot": snapshot.run_snapshot,
}


def run_operation(operation_id: str) -> str:
    """Lease and run one operation. Returns its final status, or 'skipped' when another
    worker holds it or it already finished."""
    operation = operations.lease(operation_id, worker_id())
    if operation is None:
        return "skipped"
    token = set_request_id(operation.request_id or f"op-{operation.pk}")
    try:
        handler = _HANDLERS.get(operation.action)
        if handler is None:
            operations.finish(operation, error=f"unknown action {operation.action}")
            return Operation.Status.FAILED
        instance = Instance.objects.select_related("host", "flavor", "tenant").get(
            pk=operation.target_id
        )
        handler(operation, instance)
        return operation.status
    finally:
        reset_request_id(token)
