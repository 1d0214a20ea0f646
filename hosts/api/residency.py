"""Where is my data (/api/v1/residency, DESIGN §6): the tenant's residency policy and, per
jurisdiction and zone, what of its data lies there. No host names (review L2)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hosts.residency import residency_report
from tenants.context import resolve_tenant_context
from tenants.permissions import TenantRolePermission


class HoldingSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)


def _holdings(name: str) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={
            "instances": HoldingSerializer(many=True, read_only=True),
            "images": HoldingSerializer(many=True, read_only=True),
            "volumes": HoldingSerializer(many=True, read_only=True),
            "volume_snapshots": HoldingSerializer(many=True, read_only=True),
            "exports": HoldingSerializer(many=True, read_only=True),
        },
    )


class ZoneHoldingsSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True, help_text="The zone (a datacenter).")
    region = serializers.CharField(read_only=True)
    city = serializers.CharField(read_only=True)
    country = serializers.CharField(read_only=True)
    certifications = serializers.ListField(child=serializers.CharField(), read_only=True)
    instances = HoldingSerializer(many=True, read_only=True)
    images = HoldingSerializer(many=True, read_only=True)
    volumes = HoldingSerializer(many=True, read_only=True)
    volume_snapshots = HoldingSerializer(many=True, read_only=True)
    exports = HoldingSerializer(
        many=True,
        read_only=True,
        help_text="Copies of the tenant's volumes and snapshots to download (/api/v1/exports).",
    )


class JurisdictionSerializer(serializers.Serializer):
    jurisdiction = serializers.CharField(read_only=True, help_text="ISO 3166 code.")
    allowed = serializers.BooleanField(
        read_only=True,
        help_text="Whether the policy allows it (data can lie outside a policy narrowed since).",
    )
    zones = ZoneHoldingsSerializer(many=True, read_only=True)


class ResidencySerializer(serializers.Serializer):
    residency = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="The tenant's policy."
    )
    jurisdictions = JurisdictionSerializer(many=True, read_only=True)
    unplaced = _holdings("UnplacedHoldings")


class ResidencyView(APIView):
    """Where is my data: the tenant's residency policy and, for every jurisdiction the policy
    allows or that holds its data, each zone holding its instances (their disks), volumes,
    private images (their files) and exports (copies made for download), with the zone's city,
    country and certifications. `unplaced`: what has no data in any zone yet (an image with
    no file in a store, an export whose copy failed)."""

    permission_classes = [TenantRolePermission]

    @extend_schema(responses=ResidencySerializer)
    def get(self, request: Request) -> Response:
        tenant = resolve_tenant_context(request).tenant
        return Response(residency_report(tenant))
