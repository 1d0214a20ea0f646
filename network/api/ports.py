"""The ports API (/api/v1/ports): NICs on the tenant's networks, with addresses, a MAC and
security groups; an instance's ports are listed here too (`device_id`)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictBooleanField, StrictCharField, StrictSerializer
from network import selectors
from network.api.fields import ReadOnly, TenantRef, address_list
from network.api.filtersets import PortFilterSet
from network.models import Port
from network.services import ports as port_services
from network.services.ports import FixedIPRequest, PortRequest
from tenants.api.viewsets import TenantScopedViewSet


class PortSerializer(ReadOnly):
    fixed_ips = serializers.SerializerMethodField()
    security_groups = serializers.SerializerMethodField()
    mac_address = serializers.CharField(source="mac")

    class Meta:
        model = Port
        fields = [
            "id", "name", "network", "mac_address", "fixed_ips", "device_id", "device_owner",
            "device_index", "binding_host", "port_security_enabled", "security_groups", "status",
            "fault",
            "created_at",
        ]  # fmt: skip

    def get_fixed_ips(self, port: Port) -> list[dict[str, str]]:
        return address_list(port.fixed_ips)

    def get_security_groups(self, port: Port) -> list[str]:
        return sorted(str(group.pk) for group in port.security_groups.all())


class FixedIPSerializer(StrictSerializer):
    subnet = TenantRef("subnet", required=False)
    ip_address = StrictCharField(max_length=45, required=False)


class PortCreateSerializer(StrictSerializer):
    network = TenantRef("network")
    name = StrictCharField(max_length=64, required=False, allow_blank=True)
    fixed_ips = serializers.ListField(child=FixedIPSerializer(), required=False, max_length=4)
    security_groups = serializers.ListField(
        child=TenantRef("security group"), required=False, max_length=16
    )
    port_security_enabled = StrictBooleanField(required=False)
    mac_address = StrictCharField(max_length=17, required=False)


class PortUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64, required=False, allow_blank=True)
    security_groups = serializers.ListField(
        child=TenantRef("security group"), required=False, max_length=16
    )
    port_security_enabled = StrictBooleanField(required=False)


class PortViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Ports: POST makes a port on a network of yours or a shared one, with an address of
    each requested subnet (the next free one unless `ip_address` is given: 409 `ip_in_use`,
    409 `no_address_available` when the pool is exhausted), a MAC, and security groups (your
    default group unless given). Port security lets only the port's own MAC and addresses
    out. Give a port to an instance with `ports` when creating it; a port an instance uses
    cannot be deleted (409 `port_in_use`), nor a router's (409 `port_owned_by_network`).
    Counts against the `ports` quota."""

    audit_resource = "port"
    queryset = Port.objects.none()
    serializer_class = PortSerializer
    filterset_class = PortFilterSet

    def get_queryset(self) -> QuerySet[Port]:
        return selectors.port_list(self.tenant_context.tenant).order_by("created_at")

    @extend_schema(request=PortCreateSerializer, responses={201: PortSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = PortCreateSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        fixed_ips = data.get("fixed_ips")
        port = port_services.port_create(
            actor=self.actor,
            tenant=self.tenant_context.tenant,
            request=PortRequest(
                network=data["network"],
                name=data.get("name", ""),
                fixed_ips=None
                if fixed_ips is None
                else tuple(
                    FixedIPRequest(subnet=f.get("subnet"), ip_address=f.get("ip_address"))
                    for f in fixed_ips
                ),
                security_groups=None
                if "security_groups" not in data
                else tuple(data["security_groups"]),
                port_security_enabled=data.get("port_security_enabled", True),
                mac=data.get("mac_address"),
            ),
        )
        port = selectors.port_list(self.tenant_context.tenant).get(pk=port.pk)
        return Response(PortSerializer(port).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PortUpdateSerializer, responses=PortSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        port = self.get_object()
        serializer = PortUpdateSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        port_services.port_update(
            actor=self.actor,
            port=port,
            name=data.get("name"),
            security_groups=tuple(data["security_groups"]) if "security_groups" in data else None,
            port_security_enabled=data.get("port_security_enabled"),
        )
        port = selectors.port_list(self.tenant_context.tenant).get(pk=port.pk)
        return Response(PortSerializer(port).data)

    def perform_destroy(self, instance: Port) -> None:
        port_services.port_delete(actor=self.actor, port=instance)
