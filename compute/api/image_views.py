"""The image API: tenants' images (/api/v1/images) and the operators' (/api/v1/admin/images).

A file upload (`PUT …/{id}/file`, application/octet-stream) is streamed from the request to
the image store by the service; nothing here reads the body into memory (the body size
limit middleware lets this path through: see settings.API_BODY_LIMIT_EXEMPT_PATHS).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from compute import image_files, selectors
from compute.api.image_serializers import (
    ImageCreateSerializer,
    ImageFilter,
    ImageSerializer,
    OperatorImageCreateSerializer,
    OperatorImageFilter,
    OperatorImageSerializer,
)
from compute.models import Image
from compute.services import images as image_services
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.errors import InvalidRequest, PermissionDeniedError
from tenants.api.viewsets import OperatorViewSet, TenantScopedViewSet

UPLOAD_MEDIA_TYPE = "application/octet-stream"


class StreamParser(BaseParser):
    """Accepts application/octet-stream and hands over the request stream, unread."""

    media_type = UPLOAD_MEDIA_TYPE

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        return stream


def upload_stream(request: Request) -> tuple[image_files.Readable, int | None]:
    """The request body as a stream, and its length when the client declared one."""
    media_type = (request.content_type or "").split(";")[0].strip().lower()
    if media_type != UPLOAD_MEDIA_TYPE:
        raise UnsupportedMediaType(media_type or "none")
    raw_length = request.META.get("CONTENT_LENGTH")
    if raw_length:
        try:
            length = int(raw_length)
        except ValueError:
            raise InvalidRequest(
                "Content-Length is not a number.", code="invalid_content_length"
            ) from None
        body = request.data  # StreamParser: the request itself, a file-like object
        if length <= 0 or not hasattr(body, "read"):
            raise InvalidRequest("The upload is empty.", code="empty_upload")
        return body, length
    # A chunked body has no Content-Length; a server that decodes it (gunicorn) marks the
    # stream as ending with the body (PEP 3333's wsgi.input_terminated).
    if request.META.get("wsgi.input_terminated"):
        return request.META["wsgi.input"], None
    # Neither a Content-Length nor a chunked body: HTTP says there is no body.
    raise InvalidRequest("The upload is empty.", code="empty_upload")


UPLOAD_SCHEMA = extend_schema(
    request={UPLOAD_MEDIA_TYPE: OpenApiTypes.BINARY},
    responses={200: ImageSerializer},
    description=(
        "Upload the image's file (the raw bytes, Content-Type application/octet-stream). The "
        "image must be queued; it is saving during the upload, then active, or error with a "
        "message when the file is refused (not of the declared format, or referencing a "
        "backing file or an external data file). Larger than the limit: 413 image_too_large, "
        "and the image stays queued."
    ),
)


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
    filterset_class = ImageFilter

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

    @UPLOAD_SCHEMA
    @action(detail=True, methods=["put"], url_path="file", parser_classes=[StreamParser])
    def file(self, request: Request, pk: str | None = None) -> Response:
        image = self._owned(self.get_object())
        stream, length = upload_stream(request)
        image = image_services.image_upload(
            actor=self.actor, image=image, stream=stream, length=length
        )
        return Response(ImageSerializer(image).data)


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
    filterset_class = OperatorImageFilter

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

    @UPLOAD_SCHEMA
    @action(detail=True, methods=["put"], url_path="file", parser_classes=[StreamParser])
    def file(self, request: Request, pk: str | None = None) -> Response:
        image = self.get_object()
        stream, length = upload_stream(request)
        image = image_services.image_upload(
            actor=self.actor, image=image, stream=stream, length=length
        )
        return Response(OperatorImageSerializer(image).data)
