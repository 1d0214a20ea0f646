"""A worker's side of an operation: who it is, its lease, the record of each step, and the
end of the run."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from iaas.audit import Actor
from operations.messages import tenant_text
from operations.models import Operation


def worker_id() -> str:
    """Who holds a lease: host and process. Computed per call, never at import: Celery's
    prefork children import this module in their parent, before they fork."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_actor() -> Actor:
    """The audit actor of what a worker does on its own (failures, rollbacks)."""
    return Actor.system(f"worker {worker_id()}")


def lease(operation_id: uuid.UUID | str, owner: str) -> Operation | None:
    """Take the operation for `owner` if it is queued or its lease expired; None otherwise
    (another worker has it, or it is finished)."""
    now = timezone.now()
    taken = Operation.objects.filter(
        Q(status=Operation.Status.QUEUED)
        | Q(status=Operation.Status.RUNNING, lease_expires_at__lt=now),
        pk=operation_id,
    ).update(
        status=Operation.Status.RUNNING,
        lease_owner=owner,
        lease_expires_at=now + settings.OPERATION_LEASE,
        attempts=F("attempts") + 1,
        started_at=now,
    )
    return Operation.objects.get(pk=operation_id) if taken else None


@contextmanager
def step(operation: Operation, name: str) -> Iterator[None]:
    """Run one step: record its start, end and duration, and extend the lease."""
    started = time.monotonic()
    entry: dict[str, Any] = {"name": name, "started_at": timezone.now().isoformat()}
    try:
        yield
    except Exception as exc:
        entry.update(status="failed", error=tenant_text(exc))
        raise
    else:
        entry["status"] = "done"
    finally:
        entry["seconds"] = round(time.monotonic() - started, 3)
        operation.steps = [*operation.steps, entry]
        Operation.objects.filter(pk=operation.pk).update(
            steps=operation.steps,
            lease_expires_at=timezone.now() + settings.OPERATION_LEASE,
        )


class LeaseLost(Exception):
    """The operation is no longer this run's: the sweeper failed it (its lease expired, its
    host was lost, its deadline passed) or another worker leased it since. Whoever holds it
    decides how it ends; raised inside the caller's transaction, so the outcome this run
    wanted to write on the target is rolled back with it."""


def still_held(operation: Operation) -> None:
    """LeaseLost unless this run still holds the operation (running, under its lease owner):
    for a step past which the run must not go on for someone else's operation."""
    held = Operation.objects.filter(
        pk=operation.pk, status=Operation.Status.RUNNING, lease_owner=operation.lease_owner
    ).exists()
    if not held:
        raise LeaseLost(
            f"operation {operation.pk} is no longer held by {operation.lease_owner or 'this run'}"
        )


def finish(operation: Operation, *, error: str = "") -> None:
    """End the operation: `failed` with `error` (without host paths or URIs: tenants read
    it), `succeeded` without — only while this run still holds it (running, under the lease
    owner that `lease` gave it); LeaseLost otherwise, and the operation is left as it is."""
    status = Operation.Status.FAILED if error else Operation.Status.SUCCEEDED
    message = tenant_text(error) if error else ""
    now = timezone.now()
    ended = Operation.objects.filter(
        pk=operation.pk, status=Operation.Status.RUNNING, lease_owner=operation.lease_owner
    ).update(status=status, error=message, progress=100, finished_at=now, lease_expires_at=None)
    if not ended:
        raise LeaseLost(
            f"operation {operation.pk} is no longer held by {operation.lease_owner or 'this run'}"
        )
    operation.status, operation.error, operation.progress = status, message, 100
    operation.finished_at, operation.lease_expires_at = now, None
