"""The networks API (/api/v1/networks): the tenant's L2 networks, and the operators'
shared and external ones (read-only to tenants)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from iaas.errors import PermissionDeniedError
from network import selectors
from network.api.fields import ReadOnly
from network.api.filtersets import NetworkFilterSet
from network.models import Network
from network.services import networks as network_services
from tenants.api.viewsets import TenantScopedViewSet


class NetworkSerializer(ReadOnly):
    subnets = serializers.SerializerMethodField()
    owned = serializers.SerializerMethodField()

    class Meta:
        model = Network
        fields = [
            "id", "name", "description", "shared", "external", "mtu", "is_default", "status",
            "fault", "subnets", "owned", "created_at",
        ]  # fmt: skip

    def get_subnets(self, network: Network) -> list[str]:
        return [str(subnet.pk) for subnet in network.subnets.all()]

    def get_owned(self, network: Network) -> bool:
        """True for the tenant's own networks, false for the operators' ones."""
        return network.tenant_id is not None


class NetworkCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    description = StrictCharField(max_length=255, required=False, allow_blank=True)
    mtu = StrictIntegerField(required=False)


class NetworkUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64, required=False)
    description = StrictCharField(max_length=255, required=False, allow_blank=True)


def own(network: Network, verb: str) -> Network:
    """Tenants change their own networks only: an operator's shared or external network is
    visible to them, never theirs to change (403)."""
    if network.tenant_id is None:
        raise PermissionDeniedError(
            f"{network.name} is an operator's network: you can use it, not {verb} it.",
            code="operator_network",
        )
    return network


class NetworkViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Networks: POST makes a private network (a logical switch; add a subnet to give it
    addresses); the operators' shared and external networks are listed too (`owned`
    false). A network with ports cannot be deleted (409 `network_in_use`). Counts against
    the `networks` quota."""

    audit_resource = "network"
    queryset = Network.objects.none()
    serializer_class = NetworkSerializer
    filterset_class = NetworkFilterSet

    def get_queryset(self) -> QuerySet[Network]:
        return selectors.network_list(self.tenant_context.tenant).order_by("created_at")

    @extend_schema(request=NetworkCreateSerializer, responses={201: NetworkSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = NetworkCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        network = network_services.network_create(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        return Response(NetworkSerializer(network).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=NetworkUpdateSerializer, responses=NetworkSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        network = own(self.get_object(), "change")
        serializer = NetworkUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        network = network_services.network_update(
            actor=self.actor, network=network, **serializer.validated_data
        )
        return Response(NetworkSerializer(network).data)

    def perform_destroy(self, instance: Network) -> None:
        network_services.network_delete(actor=self.actor, network=own(instance, "delete"))
