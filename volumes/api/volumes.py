"""The volumes API (/api/v1/volumes): a tenant's block storage (DESIGN §3, §8, §10)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from iaas.errors import InvalidRequest
from images import selectors as image_selectors
from images.api.exports import ExportSerializer
from operations import selectors as operation_selectors
from operations.api.operations import OperationSerializer
from operations.models import Operation
from tenants.api.viewsets import TenantScopedViewSet
from volumes import selectors
from volumes.api.filtersets import VolumeFilterSet
from volumes.models import Volume, VolumeAttachment, VolumeType
from volumes.services import exports as export_services
from volumes.services import volumes as volume_services

MAX_SIZE_GB = 65536


class VolumeAttachmentSerializer(serializers.ModelSerializer):
    """Where a volume is plugged in: the instance, and the disk the guest sees (`vdb`…;
    the guest's kernel names disks in the order it finds them, so it may differ)."""

    instance = serializers.UUIDField(source="instance_id", read_only=True)
    attached_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = VolumeAttachment
        fields = ["instance", "device", "attached_at"]
        read_only_fields = fields


class VolumeSerializer(serializers.ModelSerializer):
    volume_type = serializers.CharField(source="volume_type.name", read_only=True)
    zone = serializers.CharField(source="zone.name", read_only=True)
    source_image = serializers.UUIDField(source="source_image_id", read_only=True, allow_null=True)
    source_snapshot = serializers.UUIDField(
        source="source_snapshot_id", read_only=True, allow_null=True
    )
    encrypted = serializers.BooleanField(source="volume_type.encrypted", read_only=True)
    key_shredded_at = serializers.DateTimeField(read_only=True, allow_null=True)
    attachment = serializers.SerializerMethodField()

    class Meta:
        model = Volume
        fields = [
            "id", "name", "description", "size_gb", "volume_type", "encrypted", "key_shredded_at",
            "status", "fault", "zone", "source_image", "source_snapshot", "attachment",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(VolumeAttachmentSerializer(allow_null=True))
    def get_attachment(self, volume: Volume) -> dict[str, Any] | None:
        """The active attachment (attaching, in-use or detaching), null when there is none;
        prefetched by volumes.selectors.volume_list."""
        active = getattr(volume, "active_attachments", None)
        if active is None:
            active = list(
                VolumeAttachment.objects.filter(volume_id=volume.pk, detached_at__isnull=True)
            )
        return VolumeAttachmentSerializer(active[0]).data if active else None


class VolumeCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    description = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    size_gb = StrictIntegerField(min_value=1, max_value=MAX_SIZE_GB)
    volume_type = StrictCharField(
        max_length=64,
        required=False,
        help_text="Volume type name or id; default: the operators' default type.",
    )
    image = serializers.UUIDField(
        required=False, help_text="An image to copy into the volume (one you may read)."
    )
    snapshot = serializers.UUIDField(
        required=False,
        help_text="A volume snapshot of yours to copy into the volume (on the snapshot's host).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "image" in attrs and "snapshot" in attrs:
            raise serializers.ValidationError("Give an image or a snapshot, not both.")
        return attrs

    zone = serializers.SlugField(max_length=32, required=False)


class VolumeUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64, required=False)
    description = StrictCharField(max_length=255, required=False, allow_blank=True)


class VolumeExtendSerializer(StrictSerializer):
    size_gb = StrictIntegerField(
        min_value=1, max_value=MAX_SIZE_GB, help_text="The new size, larger than the current."
    )


class VolumeAcceptedSerializer(serializers.Serializer):
    """202 to a create: the new volume (`creating`) and the operation that makes it."""

    volume = VolumeSerializer(read_only=True)
    operation = OperationSerializer(read_only=True)


class VolumeOperationSerializer(serializers.Serializer):
    """The answer to a verb: the operation that carries it out."""

    operation = OperationSerializer(read_only=True)


class VolumeExportAcceptedSerializer(serializers.Serializer):
    """202 to an export: the export (`creating`; GET /exports/{id} until `available`) and the
    operation that makes it."""

    export = ExportSerializer(read_only=True)
    operation = OperationSerializer(read_only=True)


class VolumeViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """Volumes: block storage that outlives instances. POST answers 202 with the volume
    (`creating`) and the operation that makes it, empty or copied from an image, on a host of
    a zone your residency policy allows; counted in the `volumes` and `volume_gb` quotas.
    DELETE (available or error) answers 202: the storage is overwritten, then removed."""

    audit_resource = "volume"
    queryset = Volume.objects.none()
    serializer_class = VolumeSerializer
    filterset_class = VolumeFilterSet

    def get_queryset(self) -> QuerySet[Volume]:
        return selectors.volume_list(self.tenant_context.tenant)

    def _volume_type(self, ref: str | None) -> VolumeType:
        tenant = self.tenant_context.tenant
        found = selectors.volume_type_find(tenant, ref or settings.VOLUME_DEFAULT_TYPE)
        if found is None:
            named = ref or f"{settings.VOLUME_DEFAULT_TYPE} (the default)"
            raise InvalidRequest(
                f"No volume type {named[:80]!r} is available to you.", code="unknown_volume_type"
            )
        return found

    @extend_schema(request=VolumeCreateSerializer, responses={202: VolumeAcceptedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = VolumeCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant = self.tenant_context.tenant
        image = None
        if "image" in data:
            image = image_selectors.image_find(tenant, data["image"])
            if image is None:
                raise InvalidRequest("No such image.", code="unknown_image")
        snapshot = None
        if "snapshot" in data:
            snapshot = selectors.volume_snapshot_find(tenant, str(data["snapshot"]))
            if snapshot is None:
                raise InvalidRequest("No such volume snapshot.", code="unknown_snapshot")
        volume, operation = volume_services.volume_create(
            actor=self.actor,
            tenant=tenant,
            name=data["name"],
            description=data["description"],
            size_gb=data["size_gb"],
            volume_type=self._volume_type(data.get("volume_type")),
            image=image,
            snapshot=snapshot,
            zone=data.get("zone"),
        )
        body = {
            "volume": VolumeSerializer(self.get_queryset().get(pk=volume.pk)).data,
            "operation": OperationSerializer(operation).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=VolumeUpdateSerializer, responses=VolumeSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        volume = self.get_object()
        serializer = VolumeUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        volume = volume_services.volume_update(
            actor=self.actor, volume=volume, **serializer.validated_data
        )
        return Response(VolumeSerializer(self.get_queryset().get(pk=volume.pk)).data)

    def _accepted(self, operation: Operation) -> Response:
        return Response(
            {"operation": OperationSerializer(operation).data}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(responses={202: VolumeOperationSerializer})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._accepted(
            volume_services.volume_delete(actor=self.actor, volume=self.get_object())
        )

    @extend_schema(request=VolumeExtendSerializer, responses={202: VolumeOperationSerializer})
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def extend(self, request: Request, pk: str | None = None) -> Response:
        """Grow an available or in-use volume (409 `wrong_state` otherwise) to `size_gb`, an
        attached one live (the guest sees the new size without a reboot): only bigger
        (400 `volume_cannot_shrink`), within its type's maximum and the `volume_gb` quota."""
        volume = self.get_object()
        serializer = VolumeExtendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._accepted(
            volume_services.volume_extend(
                actor=self.actor, volume=volume, size_gb=serializer.validated_data["size_gb"]
            )
        )

    @extend_schema(request=None, responses={202: VolumeExportAcceptedSerializer})
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def export(self, request: Request, pk: str | None = None) -> Response:
        """Copy an available volume (409 `wrong_state` otherwise: an attached volume is in
        use, its copy would not be consistent; detach it first) into an export in its own
        zone, to download from GET /exports/{id}/file with its SHA-256 once `available`.
        At most EXPORTS_PER_TENANT (5) live exports (403 `quota_exceeded`)."""
        export, operation = export_services.volume_export(
            actor=self.actor, volume=self.get_object()
        )
        body = {
            "export": ExportSerializer(export).data,
            "operation": OperationSerializer(operation).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=OperationSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def operations(self, request: Request, pk: str | None = None) -> Response:
        """The volume's operations, newest first."""
        volume = self.get_object()
        history = operation_selectors.operation_history(self.tenant_context.tenant, volume.pk)
        return Response(OperationSerializer(history, many=True).data)
