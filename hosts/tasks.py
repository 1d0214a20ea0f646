"""Host tasks (control queue): thin — they call one service."""

from __future__ import annotations

from celery import shared_task

from hosts.services.heartbeats import heartbeat_all


@shared_task(name="hosts.heartbeats")
def host_heartbeats() -> dict[str, list[str]]:
    """Refresh every host's facts, then mark down the enabled ones silent for too long."""
    return heartbeat_all()
