"""Compute Celery tasks: thin — they take ids, and call one service."""

from __future__ import annotations

from celery import shared_task

from compute.services import hosts as host_services


@shared_task(name="compute.host_heartbeats")
def host_heartbeats() -> dict[str, list[str]]:
    """Refresh every host's facts, then mark down the enabled ones silent for too long."""
    return host_services.heartbeat_all()


@shared_task(name="compute.run_operation", acks_late=True)
def run_operation(operation_id: str) -> str:
    """Run one operation on this host's worker (sent to queue host.<name>)."""
    from compute.services.worker import run_operation as run

    return run(operation_id)


@shared_task(name="compute.sweep_operations")
def sweep_operations() -> list[str]:
    """Send again operations nobody picked up, or whose worker's lease expired."""
    from compute.services.operations import sweep

    return sweep()


@shared_task(name="compute.reconcile")
def reconcile() -> dict[str, object]:
    """Compare every reachable host with the database; fail operations stuck too long;
    correct host usage counters that disagree with the allocations."""
    from compute.services.reconciler import reconcile_all

    return reconcile_all()
