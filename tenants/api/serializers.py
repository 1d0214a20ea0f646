"""Shapes of the tenancy API. Serializers validate shape only; services decide."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from iaas.models import AuditEvent
from tenants.models import ApiToken, Membership, Role, Tenant


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "status", "residency", "created_at"]
        read_only_fields = fields


class TenantCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    slug = serializers.SlugField(max_length=63)
    residency = serializers.ListField(
        child=StrictCharField(min_length=2, max_length=2), required=False, allow_empty=False
    )


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = fields


class MembershipCreateSerializer(StrictSerializer):
    username = StrictCharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


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


class QuotaSerializer(serializers.Serializer):
    resource = serializers.CharField(read_only=True)
    limit = serializers.IntegerField(read_only=True, help_text="-1 means unlimited.")
    usage = serializers.IntegerField(read_only=True)
    remaining = serializers.IntegerField(read_only=True, allow_null=True)


class QuotaUpdateSerializer(StrictSerializer):
    """`{"limits": {"keypairs": 10, ...}}`"""

    limits = serializers.DictField(child=StrictIntegerField(min_value=-1), allow_empty=False)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_id",
            "actor_label",
            "credential",
            "tenant_id",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "request_id",
            "source_address",
            "outcome",
            "details",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class LoginSerializer(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False)


class MeSerializer(serializers.Serializer):
    def to_representation(self, user: Any) -> dict[str, Any]:
        memberships = Membership.objects.filter(user=user).select_related("tenant")
        return {
            "id": user.pk,
            "username": user.get_username(),
            "is_operator": bool(user.is_staff),
            "tenants": [
                {
                    "id": str(m.tenant.pk),
                    "slug": m.tenant.slug,
                    "name": m.tenant.name,
                    "role": m.role,
                }
                for m in memberships
            ],
        }
