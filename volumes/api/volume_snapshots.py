"""The volume snapshots API (/api/v1/volume-snapshots): point-in-time copies of a tenant's
volumes, from which new volumes are made (DESIGN §8, issue 11 item 3)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictSerializer
from iaas.errors import InvalidRequest
from images.api.exports import ExportSerializer
from operations import selectors as operation_selectors
from operations.api.operations import OperationSerializer
from tenants.api.viewsets import TenantScopedViewSet
from volumes import selectors
from volumes.api.volumes import VolumeExportAcceptedSerializer
from volumes.models import VolumeSnapshot
from volumes.services import exports as export_services
from volumes.services import snapshots as snapshot_services


class VolumeSnapshotSerializer(serializers.ModelSerializer):
    volume = serializers.UUIDField(source="volume_id", read_only=True)
    zone = serializers.CharField(source="zone.name", read_only=True)

    class Meta:
        model = VolumeSnapshot
        fields = [
            "id", "name", "description", "volume", "size_gb", "status", "fault",
            "consistency", "zone", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class VolumeSnapshotCreateSerializer(StrictSerializer):
    volume = serializers.UUIDField(help_text="The volume to snapshot (available or in-use).")
    name = StrictCharField(max_length=64)
    description = StrictCharField(max_length=255, required=False, allow_blank=True, default="")


class VolumeSnapshotUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64, required=False)
    description = StrictCharField(max_length=255, required=False, allow_blank=True)


class VolumeSnapshotAcceptedSerializer(serializers.Serializer):
    """202 to a create: the new snapshot (`creating`) and the operation that makes it."""

    volume_snapshot = VolumeSnapshotSerializer(read_only=True)
    operation = OperationSerializer(read_only=True)


class VolumeSnapshotOperationSerializer(serializers.Serializer):
    operation = OperationSerializer(read_only=True)


class VolumeSnapshotViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """Volume snapshots. POST {"volume", "name"} answers 202 with the snapshot (`creating`)
    and its operation: a standalone copy of the volume, taken live (crash-consistent) when
    it is attached to a running instance; counted in the `volume_snapshots` quota and, at
    the volume's size, in `volume_gb`. A snapshot outlives its volume. DELETE (available or
    error) answers 202: its storage is overwritten, then removed."""

    audit_resource = "volume_snapshot"
    queryset = VolumeSnapshot.objects.none()
    serializer_class = VolumeSnapshotSerializer

    def get_queryset(self) -> QuerySet[VolumeSnapshot]:
        return selectors.volume_snapshot_list(self.tenant_context.tenant)

    @extend_schema(
        request=VolumeSnapshotCreateSerializer, responses={202: VolumeSnapshotAcceptedSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = VolumeSnapshotCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        volume = selectors.volume_find(self.tenant_context.tenant, str(data["volume"]))
        if volume is None:
            raise InvalidRequest("No such volume.", code="unknown_volume")
        snapshot, operation = snapshot_services.volume_snapshot_create(
            actor=self.actor, volume=volume, name=data["name"], description=data["description"]
        )
        body = {
            "volume_snapshot": VolumeSnapshotSerializer(
                self.get_queryset().get(pk=snapshot.pk)
            ).data,
            "operation": OperationSerializer(operation).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=VolumeSnapshotUpdateSerializer, responses=VolumeSnapshotSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        snapshot = self.get_object()
        serializer = VolumeSnapshotUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        snapshot = snapshot_services.volume_snapshot_update(
            actor=self.actor, snapshot=snapshot, **serializer.validated_data
        )
        return Response(VolumeSnapshotSerializer(self.get_queryset().get(pk=snapshot.pk)).data)

    @extend_schema(responses={202: VolumeSnapshotOperationSerializer})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        operation = snapshot_services.volume_snapshot_delete(
            actor=self.actor, snapshot=self.get_object()
        )
        return Response(
            {"operation": OperationSerializer(operation).data}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=None, responses={202: VolumeExportAcceptedSerializer})
    @action(detail=True, methods=["post"], pagination_class=None)
    def export(self, request: Request, pk: str | None = None) -> Response:
        """Copy an available snapshot into an export in its own zone, to download from
        GET /exports/{id}/file with its SHA-256 once `available` (409 `wrong_state` for a
        snapshot not available). At most EXPORTS_PER_TENANT (5) live exports (403
        `quota_exceeded`). The snapshot cannot be deleted while its export is made."""
        export, operation = export_services.volume_snapshot_export(
            actor=self.actor, snapshot=self.get_object()
        )
        body = {
            "export": ExportSerializer(export).data,
            "operation": OperationSerializer(operation).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=OperationSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def operations(self, request: Request, pk: str | None = None) -> Response:
        """The snapshot's operations, newest first."""
        snapshot = self.get_object()
        history = operation_selectors.operation_history(self.tenant_context.tenant, snapshot.pk)
        return Response(OperationSerializer(history, many=True).data)
