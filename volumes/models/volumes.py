"""Volumes: a tenant's block storage, which outlives the instances it is attached to."""

from __future__ import annotations

import uuid

from django.db import models

from hosts.models import CephCluster, Host, Zone
from tenants.models import Tenant
from volumes.models.keys import TenantKey
from volumes.models.volume_types import VolumeType
from volumes.states import VolumeStatus


class Volume(models.Model):
    """A block device of `size_gb` GiB of type `volume_type`, placed in `zone`; on a
    directory backend it is a qcow2 file in the volumes pool of `host`; on rbd, an RBD image
    in `ceph_cluster` (the zone's, shared by its hosts: `host` is null). `source_image_id`
    is the image it was made from (null: empty); an image id rather than a key, as an
    instance's, since the image may be deleted while the volume lives; `source_snapshot`
    the volume snapshot it was copied from (null: none). `status` moves through
    volumes.states only; `fault` says what last went wrong, `erased_by` how its storage was
    erased once deleted. An encrypted volume has its data key
    (its LUKS passphrase) in `wrapped_key`, wrapped by `tenant_key` (volumes.crypto); once
    that key is shredded, `key_shredded_at` is set and the volume can never be opened again
    (attach and extend refuse it; delete still erases it)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="volumes")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    size_gb = models.PositiveIntegerField()
    volume_type = models.ForeignKey(VolumeType, on_delete=models.PROTECT, related_name="volumes")
    status = models.CharField(
        max_length=12, choices=VolumeStatus.choices, default=VolumeStatus.CREATING
    )
    fault = models.TextField(blank=True)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="volumes")
    host = models.ForeignKey(
        Host, on_delete=models.PROTECT, null=True, blank=True, related_name="volumes"
    )
    ceph_cluster = models.ForeignKey(
        CephCluster, on_delete=models.PROTECT, null=True, blank=True, related_name="volumes"
    )
    source_image_id = models.UUIDField(null=True, blank=True)
    source_snapshot = models.ForeignKey(
        "volumes.VolumeSnapshot",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="volumes_made",
    )
    erased_by = models.CharField(max_length=200, blank=True)
    tenant_key = models.ForeignKey(
        TenantKey, on_delete=models.PROTECT, null=True, blank=True, related_name="volumes"
    )
    wrapped_key = models.BinaryField(null=True, blank=True, editable=False)
    key_shredded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["tenant", "status"], name="volume_tenant_status")]
        constraints = [
            models.CheckConstraint(condition=models.Q(size_gb__gte=1), name="volume_size_positive")
        ]

    def __str__(self) -> str:
        return self.name
