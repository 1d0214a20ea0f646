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
