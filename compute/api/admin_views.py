"""The operators' inventory API: zones and hypervisor hosts (/api/v1/admin/…)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from compute.api.admin_serializers import (
    HostCreateSerializer,
    HostSerializer,
    HostStateSerializer,
    ZoneCreateSerializer,
    ZoneSerializer,
)
from compute.models import Host, Zone
from compute.services import hosts as host_services
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.errors import InvalidRequest
from tenants.api.viewsets import OperatorViewSet


class ZoneViewSet(
    IdempotentCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet
):
    """Datacenters, each with the jurisdiction residency policies are checked against."""

    audit_resource = "zone"
    queryset = Zone.objects.select_related("region")
    serializer_class = ZoneSerializer

    @extend_schema(request=ZoneCreateSerializer, responses={201: ZoneSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = ZoneCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        zone = host_services.zone_create(actor=self.actor, **serializer.validated_data)
        return Response(ZoneSerializer(zone).data, status=status.HTTP_201_CREATED)


class HostViewSet(
    IdempotentCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet
):
    """Hypervisor hosts. POST onboards one (SSH key pinning, libvirt check, pools) and answers
    when it is enabled; enable / disable / maintenance change its state."""

    audit_resource = "host"
    serializer_class = HostSerializer

    def get_queryset(self) -> QuerySet[Host]:
        return Host.objects.select_related("zone").prefetch_related("storage_pools")

    @extend_schema(request=HostCreateSerializer, responses={201: HostSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = HostCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        zone = Zone.objects.filter(name=data.pop("zone")).first()
        if zone is None:
            raise InvalidRequest("No such zone.", code="unknown_zone")
        registration = host_services.HostRegistration(zone=zone, **data)
        host = host_services.host_onboard(actor=self.actor, registration=registration)
        return Response(HostSerializer(host).data, status=status.HTTP_201_CREATED)

    def _set_state(self, request: Request, state: str) -> Response:
        host = self.get_object()
        serializer = HostStateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        host = host_services.host_set_state(
            actor=self.actor, host=host, state=state, reason=serializer.validated_data["reason"]
        )
        return Response(HostSerializer(host).data)

    @extend_schema(request=HostStateSerializer, responses=HostSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str | None = None) -> Response:
        return self._set_state(request, Host.State.ENABLED)

    @extend_schema(request=HostStateSerializer, responses=HostSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk: str | None = None) -> Response:
        return self._set_state(request, Host.State.DISABLED)

    @extend_schema(request=HostStateSerializer, responses=HostSerializer)
    @action(detail=True, methods=["post"])
    def maintenance(self, request: Request, pk: str | None = None) -> Response:
        return self._set_state(request, Host.State.MAINTENANCE)
