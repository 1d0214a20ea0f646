"""The tenancy API: who am I, sign-in, tokens, members, quotas, the tenant's audit log, and
the operators' /admin endpoints for tenants, quota limits and the whole audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.db import transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from iaas.api.errors import error_body
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.pagination import IdCursorPagination
from iaas.audit.selectors import audit_events_all, audit_events_for_tenant
from iaas.models import AuditEvent
from tenants import quotas, selectors, services
from tenants.api import filters
from tenants.api.serializers import (
    AuditEventSerializer,
    LoginSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    MeSerializer,
    QuotaSerializer,
    QuotaUpdateSerializer,
    TenantCreateSerializer,
    TenantSerializer,
    TokenCreatedSerializer,
    TokenCreateSerializer,
    TokenSerializer,
)
from tenants.api.viewsets import OperatorViewSet, TenantScopedViewSet
from tenants.context import resolve_tenant_context, source_address
from tenants.models import ApiToken, Membership, Role, Tenant
from tenants.permissions import TenantRolePermission
from tenants.signin import audit_refused_signin, lockout_seconds


class MeView(APIView):
    """The caller's account and the tenants it belongs to."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


class LoginView(APIView):
    """Session sign-in for the portal, throttled with lockout (see tenants.signin)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    audit_resource = "auth"

    @extend_schema(request=LoginSerializer, responses=MeSerializer)
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        address = source_address(request)
        wait = lockout_seconds(username, address)
        if wait is not None:
            audit_refused_signin(username, address, "locked_out")
            response = Response(
                error_body(
                    "locked_out",
                    f"Too many failed sign-ins; try again in {wait} seconds.",
                    {"retry_after": wait},
                ),
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
            response["Retry-After"] = str(wait)
            return response
        password = serializer.validated_data["password"]
        user = authenticate(request._request, username=username, password=password)
        if user is None:  # the auth backend has audited the refusal
            return Response(
                error_body("invalid_credentials", "Wrong username or password."),
                status=status.HTTP_401_UNAUTHORIZED,
            )
        login(request._request, user)  # audited by tenants.signin.audit_signin
        return Response(MeSerializer(user).data)


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CurrentTenantView(APIView):
    """The tenant this request acts in, with the caller's role in it."""

    permission_classes = [TenantRolePermission]

    @extend_schema(responses=TenantSerializer)
    def get(self, request: Request) -> Response:
        context = resolve_tenant_context(request)
        data = dict(TenantSerializer(context.tenant).data)
        data["your_role"] = context.role
        return Response(data)


class TokenViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Your own API tokens in this tenant. Any role may manage its own tokens; a new token's
    role is at most yours (and the calling token's). DELETE revokes."""

    audit_resource = "token"
    audit_verbs = {"destroy": "revoke"}  # DELETE revokes; refusals are named like successes
    # The secret is shown once and never stored, so an Idempotency-Key replay shows it as null.
    idempotency_unstored_fields = ("secret",)
    write_role = Role.READER
    queryset = ApiToken.objects.none()  # tells the schema generator the model; see get_queryset
    serializer_class = TokenSerializer
    filterset_class = filters.TokenFilter

    def get_queryset(self) -> QuerySet[ApiToken]:
        return selectors.token_list_for_user(self.tenant_context.tenant, self.request.user.pk or 0)

    @extend_schema(request=TokenCreateSerializer, responses={201: TokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        auth = request.auth
        token, secret = services.token_create(
            actor=self.actor,
            user=self.tenant_context.membership.user,
            tenant=self.tenant_context.tenant,
            creating_token=auth if isinstance(auth, ApiToken) else None,
            **serializer.validated_data,
        )
        data = TokenCreatedSerializer(token, context={"secret": secret}).data
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        services.token_revoke(actor=self.actor, token=instance)


class MembershipViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """The tenant's members. Everyone may list them; only admins add, change or remove."""

    audit_resource = "membership"
    write_role = Role.ADMIN
    lookup_value_regex = "[0-9]+"  # memberships have integer ids, not UUIDs
    queryset = Membership.objects.none()  # tells the schema generator the model; see get_queryset
    serializer_class = MembershipSerializer
    filterset_class = filters.MembershipFilter

    def get_queryset(self) -> QuerySet[Membership]:
        return selectors.membership_list(self.tenant_context.tenant)

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_add(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

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


class QuotaView(APIView):
    """Limit and current usage for each resource of the tenant (-1 means unlimited)."""

    permission_classes = [TenantRolePermission]

    @extend_schema(responses=QuotaSerializer(many=True))
    def get(self, request: Request) -> Response:
        tenant = resolve_tenant_context(request).tenant
        lines = quotas.quota_lines(tenant)
        return Response({"results": [QuotaSerializer(line).data for line in lines]})


def _jsonlines(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    for event in events.iterator(chunk_size=1000):
        yield (json.dumps(AuditEventSerializer(event).data, default=str) + "\n").encode()


class AuditEventListMixin:
    """Newest-first pages by id, and `export`: every matching event as JSON lines, oldest
    first, streamed."""

    serializer_class: Any = AuditEventSerializer
    pagination_class: Any = IdCursorPagination

    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> StreamingHttpResponse:
        view: Any = self
        queryset = view.filter_queryset(view.get_queryset()).order_by("id")
        response = StreamingHttpResponse(_jsonlines(queryset), content_type="application/x-ndjson")
        response["Content-Disposition"] = 'attachment; filename="audit-events.jsonl"'
        return response


class TenantAuditEventViewSet(AuditEventListMixin, mixins.ListModelMixin, TenantScopedViewSet):
    """The tenant's own audit events (tenant admins)."""

    read_role = Role.ADMIN
    queryset = AuditEvent.objects.none()  # tells the schema generator the model; see get_queryset
    filterset_class = filters.AuditEventFilter

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_events_for_tenant(self.tenant_context.tenant.pk)


# ---- Operators -----------------------------------------------------------------------------


class OperatorTenantViewSet(
    IdempotentCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, OperatorViewSet
):
    """Tenants, and their quota limits (`GET`/`PUT /admin/tenants/{id}/quotas`)."""

    audit_resource = "tenant"
    serializer_class = TenantSerializer
    filterset_class = filters.TenantFilter

    def get_queryset(self) -> QuerySet[Tenant]:
        return selectors.tenant_list()

    @extend_schema(request=TenantCreateSerializer, responses={201: TenantSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = TenantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = services.tenant_create(actor=self.actor, **serializer.validated_data)
        return Response(TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=QuotaUpdateSerializer, responses=QuotaSerializer(many=True))
    @action(detail=True, methods=["get", "put"], url_path="quotas", filterset_class=None)
    def quotas(self, request: Request, pk: str | None = None) -> Response:
        tenant = self.get_object()
        if request.method == "PUT":
            serializer = QuotaUpdateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            limits = serializer.validated_data["limits"]
            for resource in limits:
                quotas.check_resource(resource)
            with transaction.atomic():
                for resource, limit in sorted(limits.items()):
                    services.quota_set(
                        actor=self.actor, tenant=tenant, resource=resource, limit=limit
                    )
        lines = quotas.quota_lines(tenant)
        return Response({"results": [QuotaSerializer(line).data for line in lines]})


class OperatorAuditEventViewSet(AuditEventListMixin, mixins.ListModelMixin, OperatorViewSet):
    """Every tenant's audit events, and the platform's own (operators)."""

    filterset_class = filters.OperatorAuditEventFilter

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_events_all()
