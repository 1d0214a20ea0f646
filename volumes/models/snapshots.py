"""Volume snapshots: a point-in-time copy of a volume, standalone (DESIGN §8, issue 11
item 3), from which new volumes are made."""

from __future__ import annotations

import uuid

from django.db import models

from hosts.models import Host, Zone
from tenants.models import Tenant
from volumes.states import VolumeSnapshotStatus


class VolumeSnapshot(models.Model):
    """The content of `volume` at one instant, `size_gb` GiB (the volume's size then), kept
    as a standalone qcow2 file `volsnap-<id>` (hosts.naming) in the volumes pool of the
    volume's `host`: it outlives its volume. `consistency` says what the instant guarantees:
    ``crash-consistent`` (taken from a running guest without freezing its file systems: what
    a power cut would leave) or ``consistent`` (nothing was writing: the volume was not
    attached to a running guest). `erased_by` says how its storage was erased once deleted."""

    class Consistency(models.TextChoices):
        CONSISTENT = "consistent"  # nothing wrote to the volume while it was copied
        FILESYSTEM_CONSISTENT = "filesystem-consistent"  # live, the guest agent froze the fs
        CRASH_CONSISTENT = "crash-consistent"  # live, no agent answered: as after a power cut

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="volume_snapshots")
    volume = models.ForeignKey("volumes.Volume", on_delete=models.PROTECT, related_name="snapshots")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    size_gb = models.PositiveIntegerField()
    status = models.CharField(
        max_length=12, choices=VolumeSnapshotStatus.choices, default=VolumeSnapshotStatus.CREATING
    )
    fault = models.TextField(blank=True)
    consistency = models.CharField(max_length=24, choices=Consistency.choices, blank=True)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="volume_snapshots")
    host = models.ForeignKey(
        Host, on_delete=models.PROTECT, null=True, blank=True, related_name="volume_snapshots"
    )
    erased_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["tenant", "status"], name="volume_snapshot_tenant_status"),
            models.Index(fields=["volume", "status"], name="volume_snapshot_volume_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(size_gb__gte=1), name="volume_snapshot_size_positive"
            )
        ]

    def __str__(self) -> str:
        return self.name
