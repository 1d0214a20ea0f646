"""The operators' tenants API (/api/v1/admin/tenants): tenants and their quota limits."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from tenants import quotas, selectors, services
from tenants.api import filtersets
from tenants.api.tenant import QuotaSerializer, TenantSerializer
from tenants.api.viewsets import OperatorViewSet
from tenants.models import Tenant


class TenantCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    slug = serializers.SlugField(max_length=63)
    residency = serializers.ListField(
        child=StrictCharField(min_length=2, max_length=2), required=False, allow_empty=False
    )


class QuotaUpdateSerializer(StrictSerializer):
    """`{"limits": {"keypairs": 10, ...}}`"""

    limits = serializers.DictField(child=StrictIntegerField(min_value=-1), allow_empty=False)


class OperatorTenantViewSet(
    IdempotentCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet
):
    """Tenants, and their quota limits (`GET`/`PUT /admin/tenants/{id}/quotas`)."""

    audit_resource = "tenant"
    serializer_class = TenantSerializer
    filterset_class = filtersets.TenantFilterSet

    def get_queryset(self) -> QuerySet[Tenant]:
        return selectors.tenant_list()

    @extend_schema(request=TenantCreateSerializer, responses={201: TenantSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = TenantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = services.tenant_create(actor=self.actor, **serializer.validated_data)
        return Response(TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=QuotaUpdateSerializer, responses=QuotaSerializer(many=True))
    @action(detail=True, methods=["get", "put"], url_path="quotas", filterset_class=None)
    def quotas(self, request: Request, pk: str | None = None) -> Response:
        tenant = self.get_object()
        if request.method == "PUT":
            serializer = QuotaUpdateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            limits = serializer.validated_data["limits"]
            for resource in limits:
                quotas.check_resource(resource)
            with transaction.atomic():
                for resource, limit in sorted(limits.items()):
                    services.quota_set(
                        actor=self.actor, tenant=tenant, resource=resource, limit=limit
                    )
        lines = quotas.quota_lines(tenant)
        return Response({"results": [QuotaSerializer(line).data for line in lines]})
