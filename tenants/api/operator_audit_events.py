"""The operators' audit log (/api/v1/admin/audit-events): every tenant's events."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import mixins

from iaas.audit.selectors import audit_events_all
from iaas.models import AuditEvent
from tenants.api import filtersets
from tenants.api.audit_events import AuditEventListMixin
from tenants.api.viewsets import OperatorViewSet


class OperatorAuditEventViewSet(AuditEventListMixin, mixins.ListModelMixin, OperatorViewSet):
    """Every tenant's audit events, and the platform's own (operators)."""

    filterset_class = filtersets.OperatorAuditEventFilterSet

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_events_all()
