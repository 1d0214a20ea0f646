"""Attachments: a volume plugged into an instance, named by id only (DESIGN §1: volumes
never import compute, as Cinder's attachments name a server by id)."""

from __future__ import annotations

import uuid

from django.db import models

from hosts.models import Host
from volumes.models.volumes import Volume


class VolumeAttachment(models.Model):
    """`volume` plugged into the instance `instance_id` on `host`, as the disk `device`
    (``vdb``…: the target in the domain, which the tenant is shown; ``vda`` for the boot
    volume of an instance booted from a volume, deleted with it if `delete_on_termination`).
    Active while `detached_at` is null; kept afterwards as the volume's history. At most one active
    attachment per volume, and one per device of an instance (unique constraints: of two
    parallel attaches of one volume, exactly one gets its row)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    volume = models.ForeignKey(Volume, on_delete=models.PROTECT, related_name="attachments")
    instance_id = models.UUIDField()
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="volume_attachments")
    device = models.CharField(max_length=8)
    delete_on_termination = models.BooleanField(
        default=False, help_text="A boot volume deleted with its instance (asked at create)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    detached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["instance_id"], name="volume_attachment_instance")]
        constraints = [
            models.UniqueConstraint(
                fields=["volume"],
                condition=models.Q(detached_at__isnull=True),
                name="volume_attachment_one_active",
            ),
            models.UniqueConstraint(
                fields=["instance_id", "device"],
                condition=models.Q(detached_at__isnull=True),
                name="volume_attachment_device_free",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.volume_id} on {self.instance_id} as {self.device}"
