"""Operation tasks: thin — they take ids and call one service."""

from __future__ import annotations

from celery import shared_task

from operations import worker
from operations.services.deadlines import fail_overdue_operations
from operations.services.host_lost import fail_operations_of_lost_hosts
from operations.services.outbox import sweep


@shared_task(name="operations.run_operation", acks_late=True)
def run_operation(operation_id: str) -> str:
    """Run one operation on this host's worker (sent to queue host.<name>)."""
    return worker.run_operation(operation_id)


@shared_task(name="operations.sweep")
def sweep_operations() -> dict[str, list[str]]:
    """Fail the operations of lost hosts (down, their worker gone: never resent, never moved
    to another host); send again operations nobody picked up or whose worker's lease
    expired; fail those past their deadline."""
    host_lost = fail_operations_of_lost_hosts()
    return {"host_lost": host_lost, "sent": sweep(), "overdue_failed": fail_overdue_operations()}
