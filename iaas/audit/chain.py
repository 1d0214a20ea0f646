"""How an audit event is hashed. The hash covers every field but the id, in canonical JSON,
and the previous event's hash, so changing, inserting or removing any event breaks the chain."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64


def event_hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def hashed_fields(event: Any) -> dict[str, Any]:
    """The fields of an AuditEvent (saved or not) that its hash covers. A field added later
    is covered only when set, so the events written before it still hash as they did."""
    fields = {
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "credential": event.credential,
        "tenant_id": str(event.tenant_id) if event.tenant_id else None,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_label": event.target_label,
        "request_id": event.request_id,
        "source_address": event.source_address,
        "outcome": event.outcome,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    client_request_id = getattr(event, "client_request_id", "")
    if client_request_id:
        fields["client_request_id"] = client_request_id
    return fields
