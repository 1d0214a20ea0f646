"""Compute Celery tasks: thin — they call one service."""

from __future__ import annotations

from celery import shared_task

from compute.services.reconciler import reconcile_all


@shared_task(name="compute.reconcile")
def reconcile() -> dict[str, object]:
    """Compare every reachable host with the database; correct host usage counters that
    disagree with the allocations."""
    return reconcile_all()
