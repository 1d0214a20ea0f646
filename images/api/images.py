"""The tenants' image API (/api/v1/images): private images and the public ones (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from iaas.errors import ConflictError, PermissionDeniedError
from images import selectors
from images.api.downloads import DOWNLOAD_RENDERERS, download_schema, file_download
from images.api.filtersets import ImageFilterSet
from images.api.uploads import StreamParser, upload_schema, upload_stream
from images.models import Image
from images.services import images as image_services
from images.services.images import image_file_path
from tenants.api.viewsets import TenantScopedViewSet

MAX_MIN_DISK_GB = 64 * 1024
MAX_MIN_RAM_MB = 4 * 1024 * 1024


class ImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Image
        fields = [
            "id", "name", "disk_format", "status", "visibility", "min_disk_gb", "min_ram_mb",
            "protected", "size_bytes", "virtual_size_bytes", "checksum_sha256", "error_message",
            "created_at", "updated_at", "source_instance", "zone",
        ]  # fmt: skip
        read_only_fields = fields

    source_instance = serializers.UUIDField(
        source="source_instance_id", read_only=True, allow_null=True
    )
    zone = serializers.SerializerMethodField(
        help_text="The zone whose image store holds (or will hold) the file: one the "
        "tenant's residency policy allows. See GET /api/v1/residency."
    )

    def get_zone(self, image: Image) -> str | None:
        return image.store.zone.name if image.store is not None else None


class ImageCreateSerializer(StrictSerializer):
    """A tenant's image: private (public images are the operators')."""

    name = StrictCharField(max_length=128)
    disk_format = serializers.ChoiceField(choices=Image.DiskFormat.choices)
    visibility = serializers.ChoiceField(
        choices=Image.Visibility.choices, default=Image.Visibility.PRIVATE
    )
    min_disk_gb = StrictIntegerField(min_value=0, max_value=MAX_MIN_DISK_GB, default=0)
    min_ram_mb = StrictIntegerField(min_value=0, max_value=MAX_MIN_RAM_MB, default=0)


class ImageViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Disk images to boot instances from: the tenant's private images and the public ones.
    POST creates a queued image (metadata only; counts against the `images` quota), then
    PUT /images/{id}/file uploads its file. Public images are read-only here."""

    audit_resource = "image"
    audit_verbs = {"file": "upload"}
    queryset = Image.objects.none()  # tells the schema generator the model; see get_queryset
    serializer_class = ImageSerializer
    filterset_class = ImageFilterSet

    def get_queryset(self) -> QuerySet[Image]:
        return selectors.image_list(self.tenant_context.tenant)

    def _owned(self, image: Image) -> Image:
        if image.tenant_id != self.tenant_context.tenant.pk:
            raise PermissionDeniedError(
                "Public images are managed by operators.", code="public_image"
            )
        return image

    @extend_schema(request=ImageCreateSerializer, responses={201: ImageSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = ImageCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        image = image_services.image_create(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        return Response(ImageSerializer(image).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Image) -> None:
        image_services.image_delete(actor=self.actor, image=self._owned(instance))

    @upload_schema(ImageSerializer)
    @action(
        detail=True,
        methods=["put"],
        url_path="file",
        parser_classes=[StreamParser],
        renderer_classes=DOWNLOAD_RENDERERS,
    )
    def file(self, request: Request, pk: str | None = None) -> Response:
        image = self._owned(self.get_object())
        stream, length = upload_stream(request)
        image = image_services.image_upload(
            actor=self.actor, image=image, stream=stream, length=length
        )
        return Response(ImageSerializer(image).data)

    @download_schema("image")
    @file.mapping.get
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        """Stream an active image's file (409 `image_not_active` otherwise): the tenant's
        own private images and the public ones; another tenant's is a 404."""
        image = self.get_object()
        if image.status != Image.Status.ACTIVE:
            raise ConflictError(
                f"The image is {image.status}; only an active image has a file to download.",
                code="image_not_active",
                details={"status": image.status},
            )
        return file_download(
            image_file_path(image),
            filename=f"{image.name}.{image.disk_format}",
            sha256_hex=image.checksum_sha256,
        )
