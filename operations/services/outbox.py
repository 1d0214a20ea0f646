"""Operations as the outbox: creation in the caller's transaction, sending after commit, and
the sweeper that sends again what was not picked up (DESIGN §2)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone

from iaas.audit import Actor, audit_record
from iaas.celery import host_queue, publish
from iaas.request_context import current_request_id
from operations import registry
from operations.models import Operation
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def operation_create(
    *,
    actor: Actor,
    tenant: Tenant,
    action: str,
    target_id: uuid.UUID,
    host_name: str,
    params: dict[str, Any] | None = None,
) -> Operation:
    """Record an operation of a registered `action` in the caller's transaction and send it
    once that commits. If the broker is down the row stays queued and the sweeper sends it
    later: nothing is lost."""
    found = registry.find_action(action)
    if found is None:
        raise LookupError(f"no handler is registered for action {action!r}")
    operation = Operation.objects.create(
        tenant=tenant,
        action=action,
        target_type=found.target_type,
        target_id=target_id,
        host_name=host_name,
        actor_id=actor.user_id,
        actor_label=actor.label,
        request_id=current_request_id(),
        params=params or {},
    )
    transaction.on_commit(lambda: send(operation.pk, host_name), robust=True)
    return operation


def operation_queue(
    *,
    actor: Actor,
    tenant: Tenant,
    target: Model,
    action: str,
    host_name: str,
    params: dict[str, Any],
) -> Operation:
    """`operation_create` for `target`, and the audit event of the request (`action`, with
    the operation and `params` in its details), in the caller's transaction."""
    operation = operation_create(
        actor=actor,
        tenant=tenant,
        action=action,
        target_id=target.pk,
        host_name=host_name,
        params=params,
    )
    audit_record(
        actor=actor,
        action=action,
        tenant_id=tenant.pk,
        target=target,
        details={"operation": str(operation.pk), **params},
    )
    return operation


def send(operation_id: uuid.UUID | str, host_name: str) -> bool:
    """Put the operation on its host's queue; True when the broker took it."""
    from operations.tasks import run_operation  # the task module imports the dispatcher

    try:
        publish(run_operation.name, args=(str(operation_id),), queue=host_queue(host_name))
    except Exception as exc:  # the broker is down: the sweeper will send it
        logger.warning("operation %s not sent (%s); the sweeper will retry", operation_id, exc)
        return False
    Operation.objects.filter(pk=operation_id).update(enqueued_at=timezone.now())
    return True


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
