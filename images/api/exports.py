"""The exports API (/api/v1/exports): copies of the tenant's data to download, with their
SHA-256 (issue 11 item 9). An export is made by its source's verb (POST
/api/v1/volumes/{id}/export); here it is listed, downloaded and erased."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.errors import ConflictError
from images import selectors
from images.api.downloads import DOWNLOAD_RENDERERS, download_schema, file_download
from images.api.filtersets import ExportFilterSet
from images.models import Export
from images.services import exports as export_services
from tenants.api.viewsets import TenantScopedViewSet


class ExportSerializer(serializers.ModelSerializer):
    zone = serializers.CharField(
        source="store.zone.name",
        read_only=True,
        help_text="The zone whose image store keeps the file: the source's own zone.",
    )
    jurisdiction = serializers.CharField(source="store.zone.jurisdiction", read_only=True)

    class Meta:
        model = Export
        fields = [
            "id", "name", "source_kind", "source_id", "status", "disk_format", "size_bytes",
            "checksum_sha256", "fault", "zone", "jurisdiction", "expires_at", "erased_by",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class ExportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Exports of the tenant's data (volumes), kept in their source's zone until
    `expires_at` (settings EXPORT_TTL_HOURS, 24 by default), then erased. GET
    /exports/{id}/file downloads an available one; DELETE erases it now (its file
    overwritten, then unlinked) and answers with it, `deleted`, saying how (`erased_by`)."""

    audit_resource = "export"
    queryset = Export.objects.none()  # tells the schema generator the model; see get_queryset
    serializer_class = ExportSerializer
    filterset_class = ExportFilterSet

    def get_queryset(self) -> QuerySet[Export]:
        return selectors.export_list(self.tenant_context.tenant)

    @extend_schema(responses={200: ExportSerializer})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        export = export_services.export_delete(actor=self.actor, export=self.get_object())
        return Response(ExportSerializer(export).data)

    @download_schema("export")
    @action(
        detail=True,
        methods=["get"],
        url_path="file",
        filterset_class=None,
        pagination_class=None,
        renderer_classes=DOWNLOAD_RENDERERS,
    )
    def file(self, request: Request, pk: str | None = None) -> FileResponse:
        """Stream an available export's file (409 `export_not_available` otherwise)."""
        export = self.get_object()
        if export.status != Export.Status.AVAILABLE:
            raise ConflictError(
                f"The export is {export.status}; only an available export can be downloaded.",
                code="export_not_available",
                details={"status": export.status},
            )
        return file_download(
            export_services.export_file_path(export),
            filename=export.name,
            sha256_hex=export.checksum_sha256,
        )
