"""The subnets API (/api/v1/subnets): address ranges of the tenant's networks."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictBooleanField, StrictCharField, StrictSerializer
from iaas.errors import PermissionDeniedError
from network import selectors
from network.api.fields import ReadOnly, TenantRef
from network.api.filtersets import SubnetFilterSet
from network.api.networks import own
from network.models import Subnet
from network.services import ipam
from network.services import subnets as subnet_services
from tenants.api.viewsets import TenantScopedViewSet


class SubnetSerializer(ReadOnly):
    usage = serializers.SerializerMethodField()

    class Meta:
        model = Subnet
        fields = [
            "id", "network", "name", "ip_version", "cidr", "gateway_ip", "allocation_pools",
            "dns_nameservers", "enable_dhcp", "usage", "created_at",
        ]  # fmt: skip

    def get_usage(self, subnet: Subnet) -> dict[str, int]:
        """Addresses in use and the pools' size."""
        return ipam.subnet_usage(subnet)


class PoolSerializer(StrictSerializer):
    start = StrictCharField(max_length=45)
    end = StrictCharField(max_length=45)


class SubnetCreateSerializer(StrictSerializer):
    network = TenantRef("network")
    cidr = StrictCharField(max_length=43)
    name = StrictCharField(max_length=64, required=False, allow_blank=True)
    gateway_ip = StrictCharField(max_length=45, required=False, allow_null=True)
    allocation_pools = serializers.ListField(child=PoolSerializer(), required=False, max_length=16)
    dns_nameservers = serializers.ListField(
        child=StrictCharField(max_length=45), required=False, max_length=5
    )
    enable_dhcp = StrictBooleanField(required=False)


class SubnetUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64, required=False, allow_blank=True)
    dns_nameservers = serializers.ListField(
        child=StrictCharField(max_length=45), required=False, max_length=5
    )


def own_subnet(subnet: Subnet, verb: str) -> Subnet:
    if subnet.tenant_id is None:
        raise PermissionDeniedError(
            f"Subnet {subnet.cidr} is an operator's: you can use it, not {verb} it.",
            code="operator_network",
        )
    return subnet


class SubnetViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Subnets: an IPv4 range (/16 to /29) of one of your networks, with its gateway (the
    first address unless given; null for none), allocation pools (every other address unless
    given) and DNS servers given to guests by DHCP. Subnets of one network may not overlap
    (409 `subnet_overlap`); other tenants' and other networks' may. A subnet with addresses
    in use cannot be deleted (409 `subnet_in_use`). Counts against the `subnets` quota."""

    audit_resource = "subnet"
    queryset = Subnet.objects.none()
    serializer_class = SubnetSerializer
    filterset_class = SubnetFilterSet

    def get_queryset(self) -> QuerySet[Subnet]:
        return selectors.subnet_list(self.tenant_context.tenant).order_by("created_at")

    @extend_schema(request=SubnetCreateSerializer, responses={201: SubnetSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = SubnetCreateSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        network = own(data.pop("network"), "add subnets to")
        subnet = subnet_services.subnet_create(
            actor=self.actor, tenant=self.tenant_context.tenant, network=network, **data
        )
        return Response(SubnetSerializer(subnet).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SubnetUpdateSerializer, responses=SubnetSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        subnet = own_subnet(self.get_object(), "change")
        serializer = SubnetUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subnet = subnet_services.subnet_update(
            actor=self.actor, subnet=subnet, **serializer.validated_data
        )
        return Response(SubnetSerializer(subnet).data)

    def perform_destroy(self, instance: Subnet) -> None:
        subnet_services.subnet_delete(actor=self.actor, subnet=own_subnet(instance, "delete"))
