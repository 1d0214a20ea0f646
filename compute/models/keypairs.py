"""SSH keypairs: public keys a tenant imports to log into its instances."""

from __future__ import annotations

import uuid

from django.db import models

from tenants.models import Tenant


class KeyPair(models.Model):
    """An imported OpenSSH public key. The private key never reaches Andromède."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="keypairs")
    name = models.CharField(max_length=64)
    key_type = models.CharField(max_length=32)
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=64, help_text="SHA256:… as `ssh-keygen -l` shows.")
    bits = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="keypair_unique_name"),
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="keypair_tenant_recent")]

    def __str__(self) -> str:
        return self.name
