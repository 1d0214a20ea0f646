"""Audit events for refused and failed attempts.

A refused write leaves no trace in its own transaction (it was rolled back), so the API's
exception handler calls `audit_refused_attempt` afterwards, in a transaction of its own.
Which refusals are recorded, and against whom, is decided by the attributor the tenants app
registers (tenants.refusals): the project itself knows no caller, token or tenant.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction

from iaas.audit import refused_reads
from iaas.audit.service import Actor, audit_record
from iaas.models import AuditEvent

logger = logging.getLogger(__name__)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

_VERBS = {
    "create": "create",
    "destroy": "delete",
    "update": "update",
    "partial_update": "update",
}


def action_name(request: Any, view: Any) -> str:
    resource = getattr(view, "audit_resource", None) or "api"
    view_action = getattr(view, "action", None)
    verbs = {**_VERBS, **getattr(view, "audit_verbs", {})}
    verb = verbs.get(view_action or "", view_action or request.method.lower())
    return f"{resource}.{verb}"


@dataclass(frozen=True)
class Attribution:
    """Who a refused attempt is recorded against, and as what. A refused read (GET, HEAD,
    OPTIONS) is counted and audited in aggregate (iaas.audit.refused_reads) unless
    `one_by_one` (e.g. a refused token whose secret matched: always worth its own event)."""

    actor: Actor
    action: str
    tenant_id: uuid.UUID | None
    one_by_one: bool = False


#: Decides whether a refused request is recorded, and against whom (None: not recorded).
Attributor = Callable[[Any, Any, str], Attribution | None]
_attributor: Attributor | None = None


def register_attributor(attributor: Attributor) -> None:
    """Set who attributes refusals: the app that knows callers, tokens and tenants (tenants,
    in its ready()); the project itself knows none of them."""
    global _attributor
    _attributor = attributor


def audit_refused_attempt(request: Any, view: Any, status: int, code: str, message: str) -> None:
    """Record a refused (4xx) or failed (5xx) request the registered attributor attributes,
    in a transaction of its own; a refused read is counted, then audited in aggregate."""
    if status < 400 or _attributor is None:
        return
    attribution = _attributor(request, view, code)
    if attribution is None:
        return
    if transaction.get_connection().needs_rollback:
        logger.warning("refused attempt not audited: the connection is in a failed transaction")
        return
    try:
        if request.method in SAFE_METHODS and not attribution.one_by_one:
            refused_reads.note(
                actor=attribution.actor,
                tenant_id=attribution.tenant_id,
                action=attribution.action,
                code=code,
                status=status,
            )
            return
        audit_record(
            actor=attribution.actor,
            action=attribution.action,
            tenant_id=attribution.tenant_id,
            target_type=getattr(view, "audit_resource", "") or "",
            target_id=str((getattr(view, "kwargs", None) or {}).get("pk", ""))[:64],
            outcome=AuditEvent.Outcome.FAILED if status >= 500 else AuditEvent.Outcome.REFUSED,
            details={"status": status, "code": code, "message": message[:500]},
        )
    except DatabaseError:
        logger.exception("could not write the audit event of a refused attempt")
