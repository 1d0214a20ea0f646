"""Operations as the outbox: creation in the caller's transaction, sending after commit,
leases for workers, step records, and the sweeper."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from compute.models import Operation
from iaas.audit import Actor
from iaas.celery import app, host_queue
from iaas.request_context import current_request_id
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def operation_create(
    *,
    actor: Actor,
    tenant: Tenant,
    action: str,
    target_type: str,
    target_id: Any,
    host_name: str,
    params: dict[str, Any] | None = None,
) -> Operation:
    """Record an operation in the caller's transaction and send it once that commits. If the
    broker is down the row stays queued and the sweeper sends it later: nothing is lost."""
    operation = Operation.objects.create(
        tenant=tenant,
        action=action,
        target_type=target_type,
        target_id=target_id,
        host_name=host_name,
        actor_id=actor.user_id,
        actor_label=actor.label,
        request_id=current_request_id(),
        params=params or {},
    )
    transaction.on_commit(lambda: send(operation.pk, host_name), robust=True)
    return operation


def send(operation_id: Any, host_name: str) -> bool:
    """Put the operation on its host's queue; True when the broker took it."""
    from compute.tasks import run_operation

    try:
        with app.connection_for_write() as connection:
            # One connection attempt, no retry loop: with the broker down kombu would
            # otherwise retry for the whole connect timeout, and a request would hang on it.
            connection.ensure_connection(max_retries=0)
            run_operation.apply_async(
                args=(str(operation_id),),
                queue=host_queue(host_name),
                retry=False,
                connection=connection,  # type: ignore[call-arg]  # missing from the stubs
            )
    except Exception as exc:  # the broker is down: the sweeper will send it
        logger.warning("operation %s not sent (%s); the sweeper will retry", operation_id, exc)
        return False
    Operation.objects.filter(pk=operation_id).update(enqueued_at=timezone.now())
    return True


def lease(operation_id: Any, owner: str) -> Operation | None:
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
        entry.update(status="failed", error=str(exc)[:500])
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


def finish(operation: Operation, *, error: str = "") -> None:
    operation.status = Operation.Status.FAILED if error else Operation.Status.SUCCEEDED
    operation.error = error
    operation.progress = 100
    operation.finished_at = timezone.now()
    operation.lease_expires_at = None
    operation.save(update_fields=["status", "error", "progress", "finished_at", "lease_expires_at"])


def sweep() -> list[str]:
    """Send again the operations nobody picked up (never sent, or sent long ago and still
    queued) and those whose worker's lease expired. Returns their ids."""
    now = timezone.now()
    stale_send = now - settings.OPERATION_RESEND_AFTER
    due = Operation.objects.filter(
        Q(status=Operation.Status.QUEUED, enqueued_at__isnull=True)
        | Q(status=Operation.Status.QUEUED, enqueued_at__lt=stale_send)
        | Q(status=Operation.Status.RUNNING, lease_expires_at__lt=now)
    ).values_list("pk", "host_name")[:500]
    sent = []
    for operation_id, host_name in due:
        if send(operation_id, host_name):
            sent.append(str(operation_id))
    return sent
