"""Compute Celery tasks: thin — they call one service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import task_postrun

from compute.services import console
from compute.services.reconciler import reconcile_all

logger = logging.getLogger(__name__)


@shared_task(name="compute.reconcile")
def reconcile() -> dict[str, object]:
    """Compare every reachable host with the database; correct host usage counters that
    disagree with the allocations."""
    return reconcile_all()


@shared_task(name="compute.console_push")
def console_push(instance_id: str) -> bool:
    """On the instance's host queue: read its console tail and store it for the API."""
    return console.console_push(instance_id)


@shared_task(name="compute.console_push_host")
def console_push_host(host_name: str) -> int:
    """On a host's queue: push the console of each of its readable instances."""
    return console.console_push_host(host_name)


@shared_task(name="compute.console_refresh")
def console_refresh() -> list[str]:
    """Beat (control queue): ask every reachable host's worker to push its consoles."""
    return console.console_refresh_all()


@task_postrun.connect
def _push_console_after_operation(
    sender: Any = None, args: Any = None, state: str | None = None, **_: Any
) -> None:
    """Every operation that ran on an instance ends with its console pushed, by the worker
    that ran it (it holds the host's connection)."""
    if getattr(sender, "name", "") != "operations.run_operation" or not args:
        return
    try:
        console.console_push_after_operation(args[0])
    except Exception:  # never fail the worker for a console capture
        logger.exception("console push after operation %s failed", args[0])
