"""The operators' hosts API (/api/v1/admin/hosts): onboarding hypervisor hosts and setting
their state. This process never reaches a host (M11): onboarding is recorded here and done by
a worker (hosts.services.onboarding); the operator polls the host and confirms its key."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from hosts import selectors
from hosts.libvirt_uris import check_libvirt_uri
from hosts.models import Host, StoragePool
from hosts.services.hosts import host_set_state
from hosts.services.onboarding import (
    HostRegistration,
    host_confirm_key,
    host_forget,
    host_onboarding_retry,
    host_register,
)
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from iaas.errors import InvalidRequest
from tenants.api.viewsets import OperatorViewSet


class StoragePoolSerializer(serializers.ModelSerializer):
    class Meta:
        model = StoragePool
        fields = ["role", "backend", "name", "path", "capacity_bytes", "available_bytes"]
        read_only_fields = fields


class HostSerializer(serializers.ModelSerializer):
    zone = serializers.CharField(source="zone.name", read_only=True)
    jurisdiction = serializers.CharField(source="zone.jurisdiction", read_only=True)
    storage_pools = StoragePoolSerializer(many=True, read_only=True)
    # Blank until the host is confirmed: declared, since read-only fields lose allow_blank.
    domain_type = serializers.ChoiceField(
        choices=Host.DomainType.choices, allow_blank=True, read_only=True
    )
    instances = serializers.SerializerMethodField(
        help_text="How many instances (not deleted) the host holds: a drain ends at 0."
    )

    class Meta:
        model = Host
        fields = [
            "id", "name", "zone", "jurisdiction", "libvirt_uri", "ssh_host", "ssh_port",
            "ssh_username", "ssh_host_key_fingerprint", "ssh_host_key_seen_fingerprint",
            "onboarding_error_code", "storage_root", "domain_type", "ovs_bridge", "ovs_datapath",
            "domain_types", "security_driver", "arch", "cpu_model", "cpus", "memory_mb", "disk_gb",
            "libvirt_version", "hypervisor_version", "reserved_cpus", "reserved_memory_mb",
            "reserved_disk_gb", "cpu_allocation_ratio", "ram_allocation_ratio",
            "disk_allocation_ratio", "state", "state_reason", "last_heartbeat_at",
            "last_heartbeat_error", "storage_pools", "instances", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_instances(self, host: Host) -> int:
        counted: int | None = getattr(host, "instances_count", None)  # selectors.host_list
        if counted is None:
            counted = getattr(selectors.host_list().get(pk=host.pk), "instances_count", 0)
        return int(counted)


class HostCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=63)
    zone = serializers.SlugField(max_length=32)
    libvirt_uri = StrictCharField(max_length=255)
    storage_root = StrictCharField(max_length=255, default="/var/lib/andromede")
    ssh_host = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    ssh_port = StrictIntegerField(min_value=1, max_value=65535, default=22)
    ssh_username = StrictCharField(max_length=64, default="root")
    expected_fingerprint = StrictCharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    domain_type = serializers.ChoiceField(
        choices=Host.DomainType.choices, required=False, allow_blank=True, default=""
    )
    ovs_bridge = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$", max_length=15, default="br-int"
    )
    ovs_datapath = serializers.ChoiceField(choices=Host.Datapath.choices, default="system")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            check_libvirt_uri(
                attrs["libvirt_uri"],
                ssh_host=attrs.get("ssh_host", ""),
                ssh_port=attrs.get("ssh_port", 22),
                ssh_username=attrs.get("ssh_username", "root"),
            )
        except InvalidRequest as exc:
            raise serializers.ValidationError({"libvirt_uri": [exc.message]}) from None
        return attrs

    def validate_storage_root(self, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or "\n" in value:
            raise serializers.ValidationError("An absolute path without '..'.")
        return value.rstrip("/") or "/"

    def validate_expected_fingerprint(self, value: str) -> str:
        if value and not value.startswith("SHA256:"):
            raise serializers.ValidationError("A fingerprint as ssh-keygen -l prints it: SHA256:…")
        return value


class HostConfirmSerializer(StrictSerializer):
    fingerprint = StrictCharField(max_length=100)


class HostStateSerializer(StrictSerializer):
    reason = StrictCharField(max_length=255, required=False, allow_blank=True, default="")


class HostViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    OperatorViewSet,
):
    """Hypervisor hosts. POST records one `pending` and answers 202; a worker reaches it (SSH
    key pinning, libvirt over the pinned channel, pools). Without an expected fingerprint it
    stops at `awaiting_confirmation` showing the key seen, which `confirm` pins; `retry`
    sends a failed onboarding again, DELETE forgets one that never finished; enable /
    disable / maintenance change its state."""

    audit_resource = "host"
    serializer_class = HostSerializer

    def get_queryset(self) -> QuerySet[Host]:
        return selectors.host_list()

    @extend_schema(request=HostCreateSerializer, responses={202: HostSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = HostCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        zone = selectors.zone_find(data.pop("zone"))
        if zone is None:
            raise InvalidRequest("No such zone.", code="unknown_zone")
        registration = HostRegistration(zone=zone, **data)
        host = host_register(actor=self.actor, registration=registration)
        return Response(HostSerializer(host).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=HostConfirmSerializer, responses={202: HostSerializer})
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str | None = None) -> Response:
        """Pin the SSH host key the host presented (compare it out of band first): 409
        unless the host awaits confirmation and the fingerprint is the one seen."""
        host = self.get_object()
        serializer = HostConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        host = host_confirm_key(
            actor=self.actor, host=host, fingerprint=serializer.validated_data["fingerprint"]
        )
        return Response(HostSerializer(host).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=HostStateSerializer, responses={202: HostSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Send a failed onboarding (state `error`) to a worker again."""
        host = self.get_object()
        HostStateSerializer(data=request.data).is_valid(raise_exception=True)
        host = host_onboarding_retry(actor=self.actor, host=host)
        return Response(HostSerializer(host).data, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, instance: Host) -> None:
        """Only a host whose onboarding did not finish (409 otherwise)."""
        host_forget(actor=self.actor, host=instance)

    def _set_state(self, request: Request, state: str) -> Response:
        host = self.get_object()
        serializer = HostStateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        host = host_set_state(
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
