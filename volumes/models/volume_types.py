"""Volume types: the kinds of block storage operators offer (backend, encryption, size)."""

from __future__ import annotations

import uuid

from django.db import models

from tenants.models import Tenant


class VolumeType(models.Model):
    """What a volume is stored on and how. `backend` is `dir` (qcow2 files in a host's
    volumes pool) or `rbd` (RBD images in a zone's Ceph cluster, hosts.CephCluster).
    `encrypted` types store their volumes in QEMU's LUKS format (volumes.crypto; dir
    only). Public types are offered to every tenant, private ones only to the tenants in
    `access` (as flavors are)."""

    class Backend(models.TextChoices):
        DIR = "dir", "dir (qcow2 files in a host's volumes pool)"
        RBD = "rbd", "rbd (Ceph RBD, shared by the hosts of a zone)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    backend = models.CharField(max_length=8, choices=Backend.choices, default=Backend.DIR)
    encrypted = models.BooleanField(default=False)
    max_size_gb = models.PositiveIntegerField(help_text="The largest volume of this type.")
    is_public = models.BooleanField(default=True)
    access = models.ManyToManyField(Tenant, blank=True, related_name="private_volume_types")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_size_gb__gte=1), name="volume_type_max_size_positive"
            )
        ]

    def __str__(self) -> str:
        return self.name
