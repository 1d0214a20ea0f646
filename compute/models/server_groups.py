"""Server groups: a tenant's placement policy over a set of its instances."""

from __future__ import annotations

import uuid

from django.db import models

from tenants.models import Tenant


class ServerGroup(models.Model):
    """Members of an `affinity` group run on one host; members of an `anti-affinity` group
    each run on a different host. The scheduler enforces it under a lock on this row."""

    class Policy(models.TextChoices):
        AFFINITY = "affinity"
        ANTI_AFFINITY = "anti-affinity"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="server_groups")
    name = models.CharField(max_length=64)
    policy = models.CharField(max_length=16, choices=Policy.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="server_group_unique_name"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="server_group_tenant_recent")
        ]

    def __str__(self) -> str:
        return self.name
