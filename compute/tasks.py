"""Compute Celery tasks: thin — they load ids and call services."""

from __future__ import annotations

from celery import shared_task

from compute.models import Host
from compute.services import hosts as host_services


@shared_task(name="compute.host_heartbeats")
def host_heartbeats() -> dict[str, list[str]]:
    """Refresh every host's facts, then mark down the enabled ones silent for too long."""
    answered: list[str] = []
    silent: list[str] = []
    for host_id, name in Host.objects.values_list("pk", "name"):
        (answered if host_services.host_heartbeat(host_id) else silent).append(name)
    return {"answered": answered, "silent": silent, "down": host_services.hosts_mark_down_missed()}


@shared_task(name="compute.run_operation", acks_late=True)
def run_operation(operation_id: str) -> str:
    """Run one operation on this host's worker (sent to queue host.<name>)."""
    from compute.worker import run_operation as run

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
    from compute.reconciler import check_host_usage, fail_stuck_operations, reconcile_host

    per_host = {
        host.name: reconcile_host(host) for host in Host.objects.exclude(state=Host.State.DOWN)
    }
    return {
        "hosts": per_host,
        "stuck_operations_failed": fail_stuck_operations(),
        "host_usage_corrected": check_host_usage(),
    }
