"""Platform-wide records: the hash-chained audit log and Idempotency-Key records."""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are append-only")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("audit events are append-only")


class AuditEvent(models.Model):
    """One thing that happened (or was refused). Append-only and hash-chained: `hash` covers
    every field and `prev_hash`, the previous event's hash. On PostgreSQL a trigger also refuses
    UPDATE and DELETE, so tampering needs a privileged user and is then caught by
    `manage.py audit_verify`.

    Actor and tenant are stored as plain values, not foreign keys: the log outlives users and
    tenants and must never be cascaded away.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        REFUSED = "refused"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    credential = models.CharField(
        max_length=64, blank=True, help_text="How the actor authenticated: session or token id."
    )
    tenant_id = models.UUIDField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(
        max_length=128, blank=True, help_text="The server's id of the request (req-…)."
    )
    client_request_id = models.CharField(
        max_length=128,
        blank=True,
        help_text="The X-Request-Id the client sent, if any: its own, never trusted as ours.",
    )
    source_address = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.id} {self.action} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are append-only")


class AuditChainHead(models.Model):
    """A single row (pk=1) holding the newest event's hash. Writers lock it, so events are
    chained in one order even when many transactions write at once; verification also checks
    that the newest event is the one the head names (a deleted tail is detected)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_event_id = models.BigIntegerField(null=True)
    last_hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"audit chain head at event {self.last_event_id}"


class AuditVerification(models.Model):
    """One run of the audit chain's verification (`manage.py audit_verify`, by cron or from
    the operator console), kept so operators see when the chain was last checked and what
    that found. Not part of the chain: it records a reading of it."""

    verified_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ok = models.BooleanField()
    events_checked = models.BigIntegerField(default=0)
    summary = models.CharField(max_length=500)
    by = models.CharField(max_length=150, blank=True, help_text="Who asked: a command or user.")

    class Meta:
        ordering = ["-verified_at", "-id"]

    def __str__(self) -> str:
        return f"{self.verified_at:%Y-%m-%d %H:%M} {'OK' if self.ok else 'BROKEN'}"


class RefusedRead(models.Model):
    """Refused reads (GET, HEAD, OPTIONS) by known callers, counted instead of audited one
    event each (review L5): probing another tenant's ids or reading above one's role is worth
    knowing, but one event per request would let any caller grow the append-only log and
    contend for the chain head. One row per minute, caller, tenant, source address, action and
    code; `iaas.summarise_refused_reads` turns closed minutes into one `api.refused_reads`
    event per caller and tenant, and deletes their rows."""

    minute = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    credential = models.CharField(max_length=64, blank=True)
    tenant_id = models.UUIDField(null=True, blank=True)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64)
    code = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "minute",
                    "actor_id",
                    "actor_label",
                    "credential",
                    "tenant_id",
                    "source_address",
                    "action",
                    "code",
                    "status",
                ],
                name="refusedread_unique_key",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.code} at {self.minute}: {self.count}"


class IdempotencyRecord(models.Model):
    """The first answer to a POST that carried an `Idempotency-Key`, replayed on retries.

    `scope` is the caller (tenant and user), so two callers can use the same key. The unique
    constraint is what makes two concurrent requests with one key produce one resource.
    """

    scope = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=512)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_unique_scope_key")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
