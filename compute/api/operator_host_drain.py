"""Draining a host (POST /api/v1/admin/hosts/{id}/drain, operators only): the host's
instances are cold-migrated to other hosts (compute.services.migrate). The rest of the
hosts API is hosts.api.operator_hosts; this verb lives here because it moves instances."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from compute.services.migrate import host_drain
from hosts import selectors as host_selectors
from hosts.api.operator_hosts import HostSerializer
from hosts.models import Host
from iaas.api.serializers import StrictSerializer
from operations.api.operations import OperationSerializer
from tenants.api.viewsets import OperatorViewSet


class RefusedMigrationSerializer(serializers.Serializer):
    instance = serializers.UUIDField()
    code = serializers.CharField()
    message = serializers.CharField()


class HostDrainSerializer(serializers.Serializer):
    host = HostSerializer()
    operations = OperationSerializer(many=True)
    refused = RefusedMigrationSerializer(many=True)


class HostDrainViewSet(OperatorViewSet):
    """The drain verb of /api/v1/admin/hosts/{id}."""

    audit_resource = "host"
    serializer_class = HostDrainSerializer

    def get_queryset(self) -> QuerySet[Host]:
        return host_selectors.host_list()

    @extend_schema(request=None, responses={202: HostDrainSerializer})
    @action(detail=True, methods=["post"])
    def drain(self, request: Request, pk: str | None = None) -> Response:
        """Mark the host `draining` (no new placements) and queue one `instance.migrate`
        operation per instance on it, each to another host its tenant's residency policy
        allows; `refused` lists those that cannot move, with the reason (409 codes of a
        migration: `local_volume_attached`, `no_valid_host`, `wrong_state`…). 409
        `wrong_state` for a host that is down or not onboarded. Follow the host's
        `instances` (GET) down to 0, then enable it or put it in maintenance."""
        StrictSerializer(data=request.data).is_valid(raise_exception=True)
        result = host_drain(actor=self.actor, host=self.get_object())
        host = self.get_queryset().get(pk=result.host.pk)
        body: dict[str, Any] = {
            "host": HostSerializer(host).data,
            "operations": OperationSerializer(result.operations, many=True).data,
            "refused": result.refused,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)
