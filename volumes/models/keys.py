"""Tenant keys (DESIGN §8): each tenant's key for its encrypted volumes, stored only wrapped
by the master key from the configuration (volumes.crypto)."""

from __future__ import annotations

import uuid

from django.db import models

from tenants.models import Tenant


class TenantKey(models.Model):
    """Version `version` of `tenant`'s volume key: 32 random bytes, AES-GCM-wrapped by the
    master key named `master_key_id` (a fingerprint, not the key). A shred destroys it:
    `wrapped_key` is emptied and `destroyed_at` set; the row stays so the volumes it
    protected say why they cannot be opened. One live (undestroyed) key per tenant; a tenant
    shredded and then making encrypted volumes again gets the next version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="volume_keys")
    version = models.PositiveIntegerField()
    wrapped_key = models.BinaryField(editable=False)
    master_key_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "version"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version"], name="tenant_key_version"),
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(destroyed_at__isnull=True),
                name="tenant_key_one_live",
            ),
        ]

    def __str__(self) -> str:
        return f"key v{self.version} of {self.tenant_id}"
