"""The operators' flavors API (/api/v1/admin/flavors): defining the sizes offered."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from compute.api.flavors import FlavorSerializer, SizeCursorPagination
from compute.models import Flavor
from compute.models.flavors import validate_flavor_name
from compute.services import flavors as flavor_services
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from tenants.api.viewsets import OperatorViewSet


class FlavorCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64, validators=[validate_flavor_name])
    vcpus = StrictIntegerField(min_value=1, max_value=256)
    memory_mb = StrictIntegerField(min_value=16, max_value=4 * 1024 * 1024)
    disk_gb = StrictIntegerField(min_value=0, max_value=65536)
    is_public = StrictBooleanField(default=True)
    tenants = serializers.ListField(child=serializers.SlugField(), required=False, default=list)


class OperatorFlavorViewSet(IdempotentCreateMixin, mixins.ListModelMixin, OperatorViewSet):
    """Operators define flavors; a private one lists the tenants (slugs) that may use it."""

    audit_resource = "flavor"
    queryset = Flavor.objects.all()
    serializer_class = FlavorSerializer
    pagination_class = SizeCursorPagination

    @extend_schema(request=FlavorCreateSerializer, responses={201: FlavorSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = FlavorCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        flavor = flavor_services.flavor_create(
            actor=self.actor, tenant_slugs=data.pop("tenants"), **data
        )
        return Response(FlavorSerializer(flavor).data, status=status.HTTP_201_CREATED)
