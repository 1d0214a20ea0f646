"""The server groups API (/api/v1/server-groups): placement policies (affinity,
anti-affinity) over a tenant's instances."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from compute import selectors
from compute.api.filtersets import ServerGroupFilterSet
from compute.models import ServerGroup
from compute.services import server_groups as server_group_services
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictSerializer
from tenants.api.viewsets import TenantScopedViewSet


class ServerGroupSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()

    class Meta:
        model = ServerGroup
        fields = ["id", "name", "policy", "members", "created_at"]
        read_only_fields = fields

    def get_members(self, group: ServerGroup) -> list[str]:
        """The ids of the group's instances that are not deleted."""
        return [
            str(pk)
            for pk in group.members.exclude(status="deleted")
            .order_by("created_at")
            .values_list("pk", flat=True)
        ]


class ServerGroupCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    policy = serializers.ChoiceField(choices=ServerGroup.Policy.choices)


class ServerGroupViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Server groups: give `server_group` (name or id) when creating an instance. Members of
    an `affinity` group run on one host, members of an `anti-affinity` group each on a
    different host (409 `no_valid_host` when that cannot be). A group with instances cannot
    be deleted (409 `server_group_in_use`); counts against the `server_groups` quota."""

    audit_resource = "server_group"
    queryset = ServerGroup.objects.none()
    serializer_class = ServerGroupSerializer
    filterset_class = ServerGroupFilterSet

    def get_queryset(self) -> QuerySet[ServerGroup]:
        return selectors.server_group_list(self.tenant_context.tenant).order_by("-created_at")

    @extend_schema(request=ServerGroupCreateSerializer, responses={201: ServerGroupSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = ServerGroupCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        group = server_group_services.server_group_create(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        return Response(ServerGroupSerializer(group).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ServerGroup) -> None:
        server_group_services.server_group_delete(actor=self.actor, group=instance)
