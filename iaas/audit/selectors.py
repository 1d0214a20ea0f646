"""Reads of the audit log."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from iaas.models import AuditEvent


def audit_events_for_tenant(tenant_id: uuid.UUID) -> QuerySet[AuditEvent]:
    """A tenant's own events: those recorded in its context (never another tenant's)."""
    return AuditEvent.objects.filter(tenant_id=tenant_id)


def audit_events_all() -> QuerySet[AuditEvent]:
    """Every event (operators only)."""
    return AuditEvent.objects.all()
