"""The operators' image API (/api/v1/admin/images): every image; operators publish public
ones."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictBooleanField
from images import selectors
from images.api.filtersets import OperatorImageFilterSet
from images.api.images import ImageCreateSerializer, ImageSerializer
from images.api.uploads import StreamParser, upload_schema, upload_stream
from images.models import Image
from images.services import images as image_services
from tenants.api.viewsets import OperatorViewSet


class OperatorImageSerializer(ImageSerializer):
    tenant = serializers.UUIDField(source="tenant_id", read_only=True, allow_null=True)
    store = serializers.CharField(source="store.name", read_only=True, allow_null=True)
    upload_expires_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "tenant", "store", "upload_expires_at"]
        read_only_fields = fields


class OperatorImageCreateSerializer(ImageCreateSerializer):
    """An operator's image: public, optionally protected from deletion."""

    visibility = serializers.ChoiceField(
        choices=Image.Visibility.choices, default=Image.Visibility.PUBLIC
    )
    protected = StrictBooleanField(default=False)


class OperatorImageViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    OperatorViewSet,
):
    """Every image, for operators. POST publishes a public image (queued), PUT
    /admin/images/{id}/file uploads its file; DELETE removes any image."""

    audit_resource = "image"
    audit_verbs = {"file": "upload"}
    serializer_class = OperatorImageSerializer
    filterset_class = OperatorImageFilterSet

    def get_queryset(self) -> QuerySet[Image]:
        return selectors.image_list_all()

    @extend_schema(request=OperatorImageCreateSerializer, responses={201: OperatorImageSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = OperatorImageCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        image = image_services.image_create(
            actor=self.actor, tenant=None, **serializer.validated_data
        )
        return Response(OperatorImageSerializer(image).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Image) -> None:
        image_services.image_delete(actor=self.actor, image=instance)

    @upload_schema(OperatorImageSerializer)
    @action(detail=True, methods=["put"], url_path="file", parser_classes=[StreamParser])
    def file(self, request: Request, pk: str | None = None) -> Response:
        image = self.get_object()
        stream, length = upload_stream(request)
        image = image_services.image_upload(
            actor=self.actor, image=image, stream=stream, length=length
        )
        return Response(OperatorImageSerializer(image).data)
