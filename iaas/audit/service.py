"""Writing audit events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from iaas.audit.chain import GENESIS_HASH, event_hash, hashed_fields
from iaas.models import AuditChainHead, AuditEvent
from iaas.request_context import current_client_request_id, current_request_id


@dataclass(frozen=True)
class Actor:
    """Who did something, as the audit log records it. Built from a request by
    `tenants.context.actor_from_request` or by hand for commands and tasks."""

    user_id: int | None = None
    label: str = ""
    credential: str = ""
    source_address: str | None = None

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(user_id=None, label=label, credential="system")


def audit_record(
    *,
    actor: Actor,
    action: str,
    tenant_id: uuid.UUID | None = None,
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    outcome: str = AuditEvent.Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event to the chain, inside the caller's transaction (so the event exists if
    and only if the change commits). `target` may be a model instance: its type, pk and str()
    are recorded. Never put secrets in `details`.
    """
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(
            pk=1, defaults={"last_hash": GENESIS_HASH}
        )
        event = AuditEvent(
            created_at=timezone.now(),
            actor_id=actor.user_id,
            actor_label=actor.label[:150],
            credential=actor.credential[:64],
            tenant_id=tenant_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label[:255],
            request_id=current_request_id(),
            client_request_id=current_client_request_id(),
            source_address=actor.source_address,
            outcome=outcome,
            details=details or {},
            prev_hash=head.last_hash,
        )
        event.hash = event_hash(hashed_fields(event))
        event.save()
        AuditChainHead.objects.filter(pk=1).update(last_event_id=event.id, last_hash=event.hash)
    return event
