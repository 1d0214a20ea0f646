"""Invitations addressed to you (/api/v1/invitations): accept or decline them.

From a signed-in session only (a tenant token belongs to another tenant's business); an
invitation addressed to someone else is a 404, like any foreign resource."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from tenants import services
from tenants.api.members import InvitationSerializer, MembershipSerializer
from tenants.api.mfa import SessionOnly
from tenants.context import actor_from_request
from tenants.models import Invitation


class InvitationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your pending invitations into tenants."""

    permission_classes = [IsAuthenticated, SessionOnly]
    serializer_class = InvitationSerializer
    queryset = Invitation.objects.none()  # tells the schema generator the model
    audit_resource = "invitation"
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Invitation]:
        return Invitation.objects.select_related("tenant").filter(
            username=self.request.user.get_username(),
            status=Invitation.Status.PENDING,
            expires_at__gt=timezone.now(),
        )

    @extend_schema(request=None, responses={201: MembershipSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        membership = services.invitation_accept(
            actor=actor_from_request(request), user=request.user, invitation_id=pk
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str | None = None) -> Response:
        services.invitation_decline(
            actor=actor_from_request(request), user=request.user, invitation_id=pk
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
