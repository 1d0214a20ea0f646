"""Reads of the audit log."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from iaas.models import AuditEvent, AuditVerification


def audit_events_for_tenant(tenant_id: uuid.UUID) -> QuerySet[AuditEvent]:
    """A tenant's own events: those recorded in its context (never another tenant's)."""
    return AuditEvent.objects.filter(tenant_id=tenant_id)


def audit_events_all() -> QuerySet[AuditEvent]:
    """Every event (operators only)."""
    return AuditEvent.objects.all()


def last_verification() -> AuditVerification | None:
    """The newest run of `audit_verify` (by cron, a person or the operator console)."""
    return AuditVerification.objects.order_by("-verified_at", "-id").first()
