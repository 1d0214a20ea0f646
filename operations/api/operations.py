"""The operations API (/api/v1/operations): every change that runs on a hypervisor, with its
steps, status and error (DESIGN §3)."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import mixins, serializers

from operations import selectors
from operations.api.filtersets import OperationFilterSet
from operations.models import Operation
from tenants.api.viewsets import TenantScopedViewSet


class OperationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Operation
        fields = [
            "id", "action", "target_type", "target_id", "status", "attempts", "progress",
            "steps", "error", "actor_label", "request_id", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class OperationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Every change that runs on a hypervisor, with its steps, status and error."""

    queryset = Operation.objects.none()
    serializer_class = OperationSerializer
    filterset_class = OperationFilterSet

    def get_queryset(self) -> QuerySet[Operation]:
        return selectors.operation_list(self.tenant_context.tenant)
