"""Host tasks (control queue): thin — they call one service. Only workers run them: they hold
the SSH key and reach hypervisors; the API process only enqueues (M11)."""

from __future__ import annotations

from celery import shared_task

from hosts.services.heartbeats import heartbeat_all
from hosts.services.onboarding import host_onboarding_resend, host_onboarding_run


@shared_task(name="hosts.heartbeats")
def host_heartbeats() -> dict[str, list[str]]:
    """Refresh every host's facts, then mark down the enabled ones silent for too long."""
    return heartbeat_all()


@shared_task(name="hosts.onboard", acks_late=True)
def host_onboard(host_id: str) -> str:
    """Reach a pending host: pin check, storage, libvirt, pools (idempotent steps)."""
    return host_onboarding_run(host_id)


@shared_task(name="hosts.onboarding_resend")
def host_onboarding_resend_task() -> list[str]:
    """Send again the onboardings nobody picked up."""
    return host_onboarding_resend()
