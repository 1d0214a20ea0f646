"""Flavors: the sizes instances come in, managed by operators."""

from __future__ import annotations

import uuid

from django.core.validators import RegexValidator
from django.db import models

from tenants.models import Tenant

#: Letters, digits, `-`, `_` and `.`: the slugs flavors always had, and the usual dotted names
#: (`a1.tiny`, `m1.small`).
FLAVOR_NAME_PATTERN = r"^[-a-zA-Z0-9_.]+$"
validate_flavor_name = RegexValidator(
    FLAVOR_NAME_PATTERN,
    "A flavor name has letters, digits, hyphens, underscores and dots only.",
    code="invalid_flavor_name",
)


class Flavor(models.Model):
    """vCPUs, RAM and root disk of an instance. Public flavors are offered to every tenant;
    private ones only to the tenants in `access`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True, validators=[validate_flavor_name])
    vcpus = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    is_public = models.BooleanField(default=True)
    access = models.ManyToManyField(Tenant, blank=True, related_name="private_flavors")
    disabled = models.BooleanField(default=False, help_text="Hidden from new instances.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["vcpus", "memory_mb", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(vcpus__gte=1) & models.Q(memory_mb__gte=16),
                name="flavor_minimum_size",
            )
        ]

    def __str__(self) -> str:
        return self.name
