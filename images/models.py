"""Images: disk images instances boot from, uploaded by tenants or published by operators.

The table keeps the name it had when this model lived in `compute` (docs/decisions.md).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q

from hosts.models import Zone
from tenants.models import Tenant


class ImageStore(models.Model):
    """Where image files live (DESIGN §6, §8): a directory of the control plane that holds
    the storage of one zone (a mount of that datacenter's storage), so an image's file lies
    under that zone's jurisdiction. An image is only stored where its tenant's residency
    policy allows. The embedded default's store is settings.IMAGE_STORE_DIR in the zone
    settings.IMAGE_STORE_ZONE (its row has no `path`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=64, unique=True)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="image_stores")
    path = models.CharField(
        max_length=255,
        blank=True,
        help_text="An absolute directory; empty: settings.IMAGE_STORE_DIR (the default store).",
    )
    enabled = models.BooleanField(
        default=True, help_text="New images are placed only in enabled stores."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def directory(self) -> Path:
        return Path(self.path) if self.path else Path(settings.IMAGE_STORE_DIR)


class Image(models.Model):
    """A disk image in the image store (DESIGN §8). Created empty (`queued`), then its file is
    streamed in (`saving`), inspected with `qemu-img info` and kept (`active`) or refused
    (`error`, with a message saying why). A private image belongs to its tenant; a public one
    belongs to the platform (no tenant) and every tenant can see and boot it."""

    class DiskFormat(models.TextChoices):
        QCOW2 = "qcow2"
        RAW = "raw"

    class Status(models.TextChoices):
        QUEUED = "queued"  # waiting for its file
        SAVING = "saving"  # its file is being uploaded and inspected
        ACTIVE = "active"
        ERROR = "error"  # its file was refused; see error_message
        DELETED = "deleted"

    class Visibility(models.TextChoices):
        PRIVATE = "private"
        PUBLIC = "public"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.PROTECT,
        related_name="images",
        null=True,
        blank=True,
        help_text="The owner of a private image; empty for public images (the platform's).",
    )
    name = models.CharField(max_length=128)
    disk_format = models.CharField(max_length=16, choices=DiskFormat.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    min_disk_gb = models.PositiveIntegerField(default=0)
    min_ram_mb = models.PositiveIntegerField(default=0)
    protected = models.BooleanField(default=False, help_text="A protected image cannot be deleted.")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    virtual_size_bytes = models.BigIntegerField(null=True, blank=True)
    checksum_sha256 = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    source_instance_id = models.UUIDField(
        null=True, blank=True, help_text="The instance a snapshot image was taken from."
    )
    store = models.ForeignKey(
        ImageStore,
        on_delete=models.PROTECT,
        related_name="images",
        null=True,
        blank=True,
        help_text="Where its file lives; empty only for images older than stores (their "
        "files are in settings.IMAGE_STORE_DIR).",
    )
    upload_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While an upload is `saving`: renewed as bytes arrive; once past, the upload "
        "is taken as dead (its file removed, the image queued again).",
    )

    class Meta:
        db_table = "compute_image"
        constraints = [
            models.CheckConstraint(
                condition=(Q(visibility="private", tenant__isnull=False))
                | Q(visibility="public", tenant__isnull=True),
                name="image_public_iff_platform_owned",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="image_tenant_recent"),
            models.Index(fields=["visibility", "status"], name="image_visibility_status"),
            models.Index(
                fields=["upload_expires_at"],
                name="image_upload_expiry",
                condition=Q(status="saving"),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Export(models.Model):
    """A copy of a tenant's data made for it to download (issue 11 item 9: leaving with its
    data). A volume (and later a volume snapshot) cannot be read by the API process, so a
    worker on its host streams it into `exports/` of an image store in the data's own zone,
    hashing it on the way; the tenant downloads it from there until `expires_at`, when it
    is erased (overwritten, then unlinked). Images need no export: their store file is read
    directly (GET /images/{id}/file).

    The source is named by kind and id (no key: the source may be deleted while its export
    lives, and new kinds plug in without a migration of this table's keys)."""

    class SourceKind(models.TextChoices):
        VOLUME = "volume"
        VOLUME_SNAPSHOT = "volume_snapshot"  # reserved for volume snapshots (issue 11 item 3)

    class Status(models.TextChoices):
        CREATING = "creating"  # a worker is streaming the data in
        AVAILABLE = "available"  # its file may be downloaded
        ERROR = "error"  # the copy failed; see fault (no file is kept)
        DELETED = "deleted"  # erased (by its owner or on expiry); see erased_by

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="exports")
    source_kind = models.CharField(max_length=32, choices=SourceKind.choices)
    source_id = models.UUIDField()
    name = models.CharField(max_length=200, help_text="The download's file name.")
    store = models.ForeignKey(ImageStore, on_delete=models.PROTECT, related_name="exports")
    disk_format = models.CharField(max_length=16, default="qcow2")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATING)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    checksum_sha256 = models.CharField(max_length=64, blank=True)
    fault = models.TextField(blank=True)
    erased_by = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["tenant", "status"], name="export_tenant_status"),
            models.Index(
                fields=["expires_at"],
                name="export_expiry",
                condition=~Q(status="deleted"),
            ),
        ]

    def __str__(self) -> str:
        return self.name
