"""A cold migration of an instance from one host to another (compute.services.migrate)."""

from __future__ import annotations

import uuid

from django.db import models

from compute.models.instances import Instance
from hosts.models import Host


class Migration(models.Model):
    """One move of an instance to another host, and the capacity it holds there meanwhile.

    While `claimed`, the migration holds vcpus/memory_mb/disk_gb on `target_host` (counted
    in that host's `allocated_*` columns, under its row lock, as an Allocation would be):
    the instance's own Allocation still holds its source. On success the Allocation moves to
    the target and the claim ends (`succeeded`); on failure the claim is released
    (`failed`, `error` says why). At most one claimed migration per instance."""

    class Status(models.TextChoices):
        CLAIMED = "claimed"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="migrations")
    source_host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="+")
    target_host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CLAIMED)
    vcpus = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["instance"],
                condition=models.Q(status="claimed"),
                name="migration_one_claimed_per_instance",
            )
        ]

    def __str__(self) -> str:
        return f"{self.instance_id}: {self.source_host_id} → {self.target_host_id}"
