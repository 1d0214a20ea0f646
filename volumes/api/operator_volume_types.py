"""The operators' volume types API (/api/v1/admin/volume-types): declaring the kinds of
block storage offered."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from tenants.api.viewsets import OperatorViewSet
from volumes import selectors
from volumes.api.volume_types import VolumeTypeSerializer
from volumes.models import VolumeType
from volumes.services import volume_types as volume_type_services


class OperatorVolumeTypeSerializer(VolumeTypeSerializer):
    tenants = serializers.SerializerMethodField()

    class Meta(VolumeTypeSerializer.Meta):
        fields = [*VolumeTypeSerializer.Meta.fields, "tenants"]
        read_only_fields = fields

    def get_tenants(self, volume_type: VolumeType) -> list[str]:
        """The slugs of the tenants a private type is offered to."""
        return sorted(tenant.slug for tenant in volume_type.access.all())


class VolumeTypeCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    description = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    backend = serializers.ChoiceField(choices=VolumeType.Backend.choices, default="dir")
    encrypted = StrictBooleanField(default=False)
    max_size_gb = StrictIntegerField(min_value=1, max_value=65536)
    is_public = StrictBooleanField(default=True)
    tenants = serializers.ListField(child=serializers.SlugField(), required=False, default=list)


class OperatorVolumeTypeViewSet(IdempotentCreateMixin, mixins.ListModelMixin, OperatorViewSet):
    """Operators declare volume types; a private one lists the tenants (slugs) that may use
    it. A type on `rbd` stores its volumes in a zone's Ceph cluster (`manage.py
    ceph_cluster_add`); an encrypted `rbd` type is refused (400 `not_supported_yet`)."""

    audit_resource = "volume_type"
    queryset = VolumeType.objects.none()
    serializer_class = OperatorVolumeTypeSerializer

    def get_queryset(self) -> QuerySet[VolumeType]:
        return selectors.volume_type_list_all()

    @extend_schema(
        request=VolumeTypeCreateSerializer, responses={201: OperatorVolumeTypeSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = VolumeTypeCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        volume_type = volume_type_services.volume_type_create(
            actor=self.actor, tenant_slugs=data.pop("tenants"), **data
        )
        body = OperatorVolumeTypeSerializer(volume_type).data
        return Response(body, status=status.HTTP_201_CREATED)
