"""The operators' zones API (/api/v1/admin/zones): datacenters and their jurisdictions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from hosts import selectors
from hosts.models import Zone
from hosts.services.zones import zone_create
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictSerializer
from tenants.api.viewsets import OperatorViewSet


class ZoneSerializer(serializers.ModelSerializer):
    region = serializers.CharField(source="region.name", read_only=True)

    class Meta:
        model = Zone
        fields = [
            "id", "name", "region", "site", "city", "country", "jurisdiction",
            "certifications", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ZoneCreateSerializer(StrictSerializer):
    region = serializers.SlugField(max_length=32)
    name = serializers.SlugField(max_length=32)
    site = StrictCharField(max_length=100)
    city = StrictCharField(max_length=100)
    country = StrictCharField(min_length=2, max_length=2)
    jurisdiction = StrictCharField(min_length=2, max_length=2)
    certifications = serializers.ListField(
        child=StrictCharField(max_length=50), required=False, max_length=20
    )


class ZoneViewSet(
    IdempotentCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet
):
    """Datacenters, each with the jurisdiction residency policies are checked against."""

    audit_resource = "zone"
    queryset = selectors.zone_list()
    serializer_class = ZoneSerializer

    @extend_schema(request=ZoneCreateSerializer, responses={201: ZoneSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = ZoneCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        zone = zone_create(actor=self.actor, **serializer.validated_data)
        return Response(ZoneSerializer(zone).data, status=status.HTTP_201_CREATED)
