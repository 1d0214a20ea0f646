"""The caller's tenant and its quotas (/api/v1/tenant, /api/v1/quotas)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants import quotas
from tenants.context import resolve_tenant_context
from tenants.models import Role, Tenant
from tenants.permissions import TenantRolePermission


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "status", "residency", "created_at"]
        read_only_fields = fields


class CurrentTenantSerializer(TenantSerializer):
    your_role = serializers.ChoiceField(
        choices=Role.choices, read_only=True, help_text="The caller's role in this tenant."
    )

    class Meta(TenantSerializer.Meta):
        fields = [*TenantSerializer.Meta.fields, "your_role"]
        read_only_fields = fields


class QuotaSerializer(serializers.Serializer):
    resource = serializers.CharField(read_only=True)
    limit = serializers.IntegerField(read_only=True, help_text="-1 means unlimited.")
    usage = serializers.IntegerField(read_only=True)
    remaining = serializers.IntegerField(read_only=True, allow_null=True)


QuotaListSerializer = inline_serializer(
    "QuotaList", {"results": QuotaSerializer(many=True, help_text="One line per resource.")}
)


class CurrentTenantView(APIView):
    """The tenant this request acts in, with the caller's role in it."""

    permission_classes = [TenantRolePermission]

    @extend_schema(responses=CurrentTenantSerializer)
    def get(self, request: Request) -> Response:
        context = resolve_tenant_context(request)
        data = dict(TenantSerializer(context.tenant).data)
        data["your_role"] = context.role
        return Response(data)


class QuotaView(APIView):
    """Limit and current usage for each resource of the tenant (-1 means unlimited)."""

    permission_classes = [TenantRolePermission]

    @extend_schema(responses=QuotaListSerializer)
    def get(self, request: Request) -> Response:
        tenant = resolve_tenant_context(request).tenant
        lines = quotas.quota_lines(tenant)
        return Response({"results": [QuotaSerializer(line).data for line in lines]})
