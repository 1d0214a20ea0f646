"""The tenant's audit log (/api/v1/audit-events), and its JSON-lines export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request

from iaas.api.pagination import IdCursorPagination
from iaas.audit.selectors import audit_events_for_tenant
from iaas.models import AuditEvent
from tenants.api import filtersets
from tenants.api.viewsets import TenantScopedViewSet
from tenants.models import Role


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_id",
            "actor_label",
            "credential",
            "tenant_id",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "request_id",
            "source_address",
            "outcome",
            "details",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


def _jsonlines(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    for event in events.iterator(chunk_size=1000):
        yield (json.dumps(AuditEventSerializer(event).data, default=str) + "\n").encode()


class AuditEventListMixin:
    """Newest-first pages by id, and `export`: every matching event as JSON lines, oldest
    first, streamed."""

    serializer_class: Any = AuditEventSerializer
    pagination_class: Any = IdCursorPagination

    @extend_schema(
        filters=True,
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                description="JSON lines: every matching event, one per line as the list shows "
                "it, oldest first.",
            )
        },
    )
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> StreamingHttpResponse:
        view: Any = self
        queryset = view.filter_queryset(view.get_queryset()).order_by("id")
        response = StreamingHttpResponse(_jsonlines(queryset), content_type="application/x-ndjson")
        response["Content-Disposition"] = 'attachment; filename="audit-events.jsonl"'
        return response


class TenantAuditEventViewSet(AuditEventListMixin, mixins.ListModelMixin, TenantScopedViewSet):
    """The tenant's own audit events (tenant admins)."""

    read_role = Role.ADMIN
    queryset = AuditEvent.objects.none()  # tells the schema generator the model; see get_queryset
    filterset_class = filtersets.AuditEventFilterSet

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_events_for_tenant(self.tenant_context.tenant.pk)


# ---- Operators -----------------------------------------------------------------------------
