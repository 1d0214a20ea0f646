"""API tokens (/api/v1/tokens): a caller's own, shown once, stored hashed."""

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
from tenants.mfa import session_verified
from tenants.models import ApiToken, Role


class TokenSerializer(serializers.ModelSerializer):
    """A token as listed: never its secret (which is not stored)."""

    tenant = serializers.UUIDField(source="tenant_id", read_only=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "tenant",
            "role",
            "key_id",
            "status",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields

    def get_status(self, token: ApiToken) -> str:
        from django.utils import timezone

        if token.revoked_at is not None:
            return "revoked"
        if token.expires_at <= timezone.now():
            return "expired"
        return "active"


class TokenCreatedSerializer(TokenSerializer):
    """The answer to a create: the only time the secret is ever shown."""

    secret = serializers.SerializerMethodField()

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, token: ApiToken) -> str:
        return str(self.context["secret"])


class TokenCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    expires_at = serializers.DateTimeField(required=False)


class TokenViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Your own API tokens in this tenant. Any role may manage its own tokens; a new token's
    role is at most yours (and the calling token's); a token sees and revokes only tokens of
    its role or lower. DELETE revokes."""

    audit_resource = "token"
    audit_verbs = {"destroy": "revoke"}  # DELETE revokes; refusals are named like successes
    # The secret is shown once and never stored, so an Idempotency-Key replay shows it as null.
    idempotency_unstored_fields = ("secret",)
    write_role = Role.READER
    queryset = ApiToken.objects.none()  # tells the schema generator the model; see get_queryset
    serializer_class = TokenSerializer
    filterset_class = filtersets.TokenFilterSet

    def get_queryset(self) -> QuerySet[ApiToken]:
        auth = self.request.auth
        return selectors.token_list_for_user(
            self.tenant_context.tenant,
            self.request.user.pk or 0,
            max_role=auth.role if isinstance(auth, ApiToken) and auth.role else None,
        )

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
            session_passed_mfa=(
                None if isinstance(auth, ApiToken) else session_verified(request._request)
            ),
            **serializer.validated_data,
        )
        data = TokenCreatedSerializer(token, context={"secret": secret}).data
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        services.token_revoke(actor=self.actor, token=instance)
