"""Tenants, their members and roles, API tokens, quota limits and sign-in attempts."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def default_residency() -> list[str]:
    return list(settings.DEFAULT_RESIDENCY)


class Tenant(models.Model):
    """An organisation that owns resources. Its residency policy lists the jurisdictions
    (ISO 3166 country codes) where its data may live; France only by default."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=63, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    residency = models.JSONField(
        default=default_residency,
        help_text="Jurisdictions (ISO 3166 codes) where this tenant's data may live.",
    )
    require_mfa = models.BooleanField(
        default=False,
        help_text="Every member must sign in with a second factor (admins always must).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        # The operators' permission (tenants.operators.is_operator): staff alone is not enough.
        permissions = [("operate_cloud", "Operate the cloud (operators' API and tokens)")]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    """Tenant roles, from least to most powerful."""

    READER = "reader"
    MEMBER = "member"
    ADMIN = "admin"

    @classmethod
    def rank(cls, role: str) -> int:
        return [cls.READER, cls.MEMBER, cls.ADMIN].index(cls(role))

    @classmethod
    def lowest(cls, *roles: str) -> Role:
        return cls(min(roles, key=cls.rank))


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user")
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"


class ApiToken(models.Model):
    """An API credential. The secret is shown once at creation; only its SHA-256 is stored
    (the secret is 256 random bits, so a fast hash is as strong as a slow one).

    A tenant token acts in one tenant with a role no higher than its owner's membership; an
    operator token (tenant is null) is only for operator accounts and the /admin API.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="api_tokens", null=True, blank=True
    )
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=8, choices=Role.choices, blank=True)
    key_id = models.CharField(max_length=24, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)
    # Created by a session that passed its second factor, or by a token that was: only such a
    # token may mint further tokens for an account bound to MFA (tenants.mfa).
    second_factor = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    @property
    def is_operator_token(self) -> bool:
        return self.tenant_id is None


class Quota(models.Model):
    """An explicit limit for one tenant and resource; resources without a row use the default
    from settings.DEFAULT_QUOTAS. -1 means unlimited. Usage is never stored: it is counted from
    the resource rows themselves."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="quotas")
    resource = models.CharField(max_length=32)
    limit = models.IntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "resource"], name="quota_unique_resource"),
            models.CheckConstraint(condition=models.Q(limit__gte=-1), name="quota_limit_gte_-1"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant}: {self.resource} ≤ {self.limit}"


class SignInAttempt(models.Model):
    """One password sign-in attempt; failures inside a window lead to a lockout.

    Operators sign in on their own path (the operator realm: `/admin/` and
    `/api/v1/admin/auth/login`); attempts on the tenant path (the API's `auth/login`, the
    portal) never count against an operator's lockout, so anyone on the internet cannot lock
    an operator out."""

    class Realm(models.TextChoices):
        TENANT = "tenant"
        OPERATOR = "operator"

    realm = models.CharField(max_length=8, choices=Realm.choices, default=Realm.TENANT)
    username = models.CharField(max_length=150, db_index=True)
    source_address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    succeeded = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.username} {'ok' if self.succeeded else 'failed'} {self.created_at}"


class AuthNoise(models.Model):
    """Anonymous authentication noise, counted instead of audited one event each (M1): bearer
    tokens that are malformed or name no token, and sign-ins refused because of a lockout.
    One row per kind, source address and minute; `tenants.summarise_auth_noise` turns closed
    minutes into one audit event and deletes their rows."""

    class Kind(models.TextChoices):
        UNKNOWN_TOKEN = "unknown_token"  # noqa: S105 - a kind, not a secret
        LOCKED_OUT_SIGNIN = "locked_out_signin"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    minute = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "source_address", "minute"],
                name="authnoise_unique_kind_source_minute",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} from {self.source_address} at {self.minute}: {self.count}"


def _invitation_expiry() -> datetime:
    return timezone.now() + timedelta(days=7)


class Invitation(models.Model):
    """A tenant admin's offer of membership to a username, which becomes a membership only when
    the account of that name accepts it (review M9: no global username oracle, no membership
    without consent). Pending for a week."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        DECLINED = "declined"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=8, choices=Role.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    invited_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_invitation_expiry)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "username"],
                condition=models.Q(status="pending"),
                name="invitation_one_pending_per_username",
            )
        ]

    def __str__(self) -> str:
        return f"{self.username} → {self.tenant} ({self.role}, {self.status})"
