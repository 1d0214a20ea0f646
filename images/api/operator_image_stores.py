"""The operators' image stores API (/api/v1/admin/image-stores): where image files live, one
or more per zone (DESIGN §6, §8). A tenant's image goes only to a store of a zone its
residency policy allows."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from hosts import selectors as host_selectors
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictSerializer
from iaas.errors import InvalidRequest
from images import selectors
from images.models import ImageStore
from images.services import stores
from tenants.api.viewsets import OperatorViewSet


class ImageStoreSerializer(serializers.ModelSerializer):
    zone = serializers.CharField(source="zone.name", read_only=True)
    jurisdiction = serializers.CharField(source="zone.jurisdiction", read_only=True)
    directory = serializers.SerializerMethodField(
        help_text="Where its files are (the default store's is settings.IMAGE_STORE_DIR)."
    )

    class Meta:
        model = ImageStore
        fields = ["id", "name", "zone", "jurisdiction", "directory", "enabled", "created_at"]
        read_only_fields = fields

    def get_directory(self, store: ImageStore) -> str:
        return str(store.directory)


class ImageStoreCreateSerializer(StrictSerializer):
    name = serializers.SlugField(max_length=64)
    zone = serializers.SlugField(max_length=32)
    path = StrictCharField(max_length=255, help_text="An absolute directory this API writes.")


class ImageStoreViewSet(
    IdempotentCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet
):
    """Image stores, each in a zone. POST declares one: a directory of the control plane
    that holds that zone's storage (it must exist and be writable)."""

    audit_resource = "image_store"
    serializer_class = ImageStoreSerializer

    def get_queryset(self) -> QuerySet[ImageStore]:
        return selectors.image_store_list()

    @extend_schema(request=ImageStoreCreateSerializer, responses={201: ImageStoreSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = ImageStoreCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        zone = host_selectors.zone_find(data["zone"])
        if zone is None:
            raise InvalidRequest("No such zone.", code="unknown_zone")
        store = stores.image_store_create(
            actor=self.actor, name=data["name"], zone=zone, path=data["path"]
        )
        return Response(ImageStoreSerializer(store).data, status=status.HTTP_201_CREATED)
