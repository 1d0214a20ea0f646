"""Audit events for refused and failed attempts.

A refused write leaves no trace in its own transaction (it was rolled back), so the API's
exception handler calls `audit_refused_attempt` afterwards, in a transaction of its own. It
records refused writes by authenticated callers and every refused bearer token (a revoked or
expired token still in use is worth knowing about). Anonymous requests without credentials
are not recorded, so unauthenticated noise cannot flood the log.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, transaction
from rest_framework.permissions import SAFE_METHODS

from iaas.audit.service import audit_record
from iaas.models import AuditEvent

logger = logging.getLogger(__name__)

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


def audit_refused_attempt(request: Any, view: Any, status: int, code: str, message: str) -> None:
    from tenants.authentication import TokenRefused
    from tenants.context import actor_from_request, source_address

    if status < 400:
        return
    from iaas.audit.service import Actor

    exc_token = None
    refused_auth = getattr(request, "_andromede_token_refused", None)
    if isinstance(refused_auth, TokenRefused):
        exc_token = refused_auth.token
    user = getattr(request, "user", None)
    authenticated = bool(user is not None and user.is_authenticated)
    if code in {"invalid_token", "token_expired", "token_revoked", "account_disabled"}:
        actor = Actor(
            user_id=exc_token.user_id if exc_token else None,
            label=exc_token.user.get_username() if exc_token else "",
            credential=f"token:{exc_token.key_id}" if exc_token else "token:unknown",
            source_address=source_address(request),
        )
        action = "auth.token"
        tenant_id = exc_token.tenant_id if exc_token else None
    elif authenticated and request.method not in SAFE_METHODS:
        actor = actor_from_request(request)
        action = action_name(request, view)
        context = getattr(request, "_tenant_context", None)
        tenant_id = context.tenant.pk if context is not None else None
    else:
        return
    if transaction.get_connection().needs_rollback:
        logger.warning("refused attempt not audited: the connection is in a failed transaction")
        return
    try:
        audit_record(
            actor=actor,
            action=action,
            tenant_id=tenant_id,
            target_type=getattr(view, "audit_resource", "") or "",
            target_id=str((getattr(view, "kwargs", None) or {}).get("pk", ""))[:64],
            outcome=AuditEvent.Outcome.FAILED if status >= 500 else AuditEvent.Outcome.REFUSED,
            details={"status": status, "code": code, "message": message[:500]},
        )
    except DatabaseError:
        logger.exception("could not write the audit event of a refused attempt")
