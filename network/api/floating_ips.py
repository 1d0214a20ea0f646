"""The floating IPs API (/api/v1/floating-ips): public addresses mapped onto ports."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictSerializer
from network import selectors
from network.api.fields import ReadOnly, TenantRef
from network.api.filtersets import FloatingIPFilterSet
from network.models import FloatingIP
from network.services import floating_ips as floating_services
from tenants.api.viewsets import TenantScopedViewSet


class FloatingIPSerializer(ReadOnly):
    class Meta:
        model = FloatingIP
        fields = [
            "id", "network", "address", "port", "fixed_ip", "router", "description",
            "status", "fault", "created_at",
        ]  # fmt: skip


class FloatingIPCreateSerializer(StrictSerializer):
    network = TenantRef("network")
    port = TenantRef("port", required=False, allow_null=True)
    description = StrictCharField(max_length=255, required=False, allow_blank=True)


class FloatingIPUpdateSerializer(StrictSerializer):
    port = TenantRef("port", allow_null=True)


class FloatingIPViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Floating IPs: POST allocates an address of an external network (409
    `no_address_available` when its pool is exhausted); PATCH `port` associates it with a
    port of yours that one of your routers joins to that network (409 `no_route`
    otherwise), or disassociates it with null; DELETE releases it. Counts against
    `floating_ips`."""

    audit_resource = "floating_ip"
    queryset = FloatingIP.objects.none()
    serializer_class = FloatingIPSerializer
    filterset_class = FloatingIPFilterSet

    def get_queryset(self) -> QuerySet[FloatingIP]:
        return selectors.floating_ip_list(self.tenant_context.tenant).order_by("created_at")

    @extend_schema(request=FloatingIPCreateSerializer, responses={201: FloatingIPSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = FloatingIPCreateSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        floating = floating_services.floating_ip_create(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        return Response(FloatingIPSerializer(floating).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=FloatingIPUpdateSerializer, responses=FloatingIPSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        floating = self.get_object()
        serializer = FloatingIPUpdateSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        floating = floating_services.floating_ip_update(
            actor=self.actor, floating=floating, port=serializer.validated_data["port"]
        )
        return Response(FloatingIPSerializer(floating).data)

    def perform_destroy(self, instance: FloatingIP) -> None:
        floating_services.floating_ip_delete(actor=self.actor, floating=instance)
