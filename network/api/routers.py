"""The routers API (/api/v1/routers): a router joins the tenant's subnets and, with a
gateway on an external network, lets them reach outside (SNAT) and take floating IPs."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictBooleanField, StrictCharField, StrictSerializer
from network import selectors
from network.api.fields import ReadOnly, TenantRef, address_list
from network.api.filtersets import RouterFilterSet
from network.models import Router
from network.services import routers as router_services
from tenants.api.viewsets import TenantScopedViewSet


class RouterSerializer(ReadOnly):
    interfaces = serializers.SerializerMethodField()
    external_gateway = serializers.SerializerMethodField()

    class Meta:
        model = Router
        fields = [
            "id", "name", "external_network", "enable_snat", "external_gateway",
            "interfaces", "status", "fault", "created_at",
        ]  # fmt: skip

    def get_interfaces(self, router: Router) -> list[dict[str, Any]]:
        """Each interface: its port, and its subnet with the gateway address it holds."""
        return [
            {"port": str(port.pk), "fixed_ips": address_list(port.fixed_ips)}
            for port in selectors.router_interfaces(router).order_by("created_at")
        ]

    def get_external_gateway(self, router: Router) -> dict[str, Any] | None:
        """The gateway port's addresses on the external network (the SNAT address)."""
        port = selectors.router_gateway_port(router)
        if port is None:
            return None
        return {"port": str(port.pk), "fixed_ips": address_list(port.fixed_ips)}


class RouterCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    external_network = TenantRef("network", required=False, allow_null=True)
    enable_snat = StrictBooleanField(required=False)


class RouterUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64, required=False)
    external_network = TenantRef("network", required=False, allow_null=True)
    enable_snat = StrictBooleanField(required=False)


class RouterInterfaceSerializer(StrictSerializer):
    subnet = TenantRef("subnet")


class RouterViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Routers: `add-interface` puts the router on one of your subnets (holding its gateway
    address), `remove-interface` takes it off; `external_network` gives it a gateway on an
    external network, from whose address the subnets behind it reach outside (SNAT, unless
    `enable_snat` is false) and through which floating IPs reach their ports. A router with
    interfaces cannot be deleted (409 `router_in_use`). Counts against `routers`."""

    audit_resource = "router"
    queryset = Router.objects.none()
    serializer_class = RouterSerializer
    filterset_class = RouterFilterSet

    def get_queryset(self) -> QuerySet[Router]:
        return selectors.router_list(self.tenant_context.tenant).order_by("created_at")

    @extend_schema(request=RouterCreateSerializer, responses={201: RouterSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = RouterCreateSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        router = router_services.router_create(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        return Response(RouterSerializer(router).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RouterUpdateSerializer, responses=RouterSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        router = self.get_object()
        serializer = RouterUpdateSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        router = router_services.router_update(
            actor=self.actor, router=router, **serializer.validated_data
        )
        return Response(RouterSerializer(router).data)

    def perform_destroy(self, instance: Router) -> None:
        router_services.router_delete(actor=self.actor, router=instance)

    @extend_schema(request=RouterInterfaceSerializer, responses=RouterSerializer)
    @action(
        detail=True, methods=["post"], url_path="add-interface", filterset_class=None,
        pagination_class=None,
    )  # fmt: skip
    def add_interface(self, request: Request, pk: str | None = None) -> Response:
        """Put the router on a subnet of yours (409 `subnet_has_router`, `no_gateway`)."""
        router = self.get_object()
        serializer = RouterInterfaceSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        router_services.router_add_interface(
            actor=self.actor, router=router, subnet=serializer.validated_data["subnet"]
        )
        return Response(RouterSerializer(router).data)

    @extend_schema(request=RouterInterfaceSerializer, responses=RouterSerializer)
    @action(
        detail=True, methods=["post"], url_path="remove-interface", filterset_class=None,
        pagination_class=None,
    )  # fmt: skip
    def remove_interface(self, request: Request, pk: str | None = None) -> Response:
        """Take the router off a subnet (409 while floating IPs use it)."""
        router = self.get_object()
        serializer = RouterInterfaceSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        router_services.router_remove_interface(
            actor=self.actor, router=router, subnet=serializer.validated_data["subnet"]
        )
        return Response(RouterSerializer(router).data)
