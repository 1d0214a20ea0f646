"""Members of a tenant and their roles (/api/v1/members)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictSerializer
from tenants import selectors, services
from tenants.api import filtersets
from tenants.api.viewsets import TenantScopedViewSet
from tenants.models import Invitation, Membership, Role


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = fields


class InvitationSerializer(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug", read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "tenant", "username", "role", "status", "created_at", "expires_at"]
        read_only_fields = fields


class MembershipCreateSerializer(StrictSerializer):
    username = StrictCharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """The tenant's members. Everyone may list them; only admins invite, change or remove. POST
    invites a username (202, the same answer whether or not such an account exists): the
    membership exists once its owner accepts (`/api/v1/invitations`)."""

    audit_resource = "membership"
    write_role = Role.ADMIN
    lookup_value_regex = "[0-9]+"  # memberships have integer ids, not UUIDs
    queryset = Membership.objects.none()  # tells the schema generator the model; see get_queryset
    serializer_class = MembershipSerializer
    filterset_class = filtersets.MembershipFilterSet

    def get_queryset(self) -> QuerySet[Membership]:
        return selectors.membership_list(self.tenant_context.tenant)

    audit_verbs = {"create": "invite"}

    @extend_schema(request=MembershipCreateSerializer, responses={202: InvitationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        serializer = MembershipUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_set_role(
            actor=self.actor, membership=membership, role=serializer.validated_data["role"]
        )
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        services.membership_remove(actor=self.actor, membership=instance)
