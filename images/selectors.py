"""Reads of images: a tenant sees its own private images and the public ones."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from hosts.residency import Holding
from images.models import Export, Image, ImageStore
from tenants.models import Tenant
from tenants.selectors import tenant_scoped


def image_list(tenant: Tenant) -> QuerySet[Image]:
    """The images this tenant sees: its own private ones and the public ones, not deleted."""
    visible = tenant_scoped(Image.objects.all(), tenant) | Image.objects.filter(
        visibility=Image.Visibility.PUBLIC
    )
    return visible.exclude(status=Image.Status.DELETED).select_related("store__zone")


def image_find(tenant: Tenant, image_id: uuid.UUID | str) -> Image | None:
    """One image the tenant may boot or read, or None."""
    return image_list(tenant).filter(pk=image_id).first()


def image_list_all() -> QuerySet[Image]:
    """Operators only: every tenant's images and the public ones, not deleted."""
    return Image.objects.exclude(status=Image.Status.DELETED).select_related("store__zone")


def image_holdings(tenant: Tenant) -> list[Holding]:
    """The tenant's private images that have a file, with their store's zone (for "where is
    my data"); public images are the platform's, not the tenant's data."""
    images = (
        tenant_scoped(Image.objects.select_related("store"), tenant)
        .exclude(status=Image.Status.DELETED)
        .order_by("name", "id")
    )
    return [
        Holding(
            id=str(image.pk),
            name=image.name,
            status=image.status,
            # queued (no file yet) and error (its file refused and removed): nothing stored.
            zone_id=image.store.zone_id
            if image.store is not None and image.status in _STORED
            else None,
        )
        for image in images
    ]


_STORED = {Image.Status.ACTIVE, Image.Status.SAVING}


def image_store_list() -> QuerySet[ImageStore]:
    """Operators only: every image store, with its zone."""
    return ImageStore.objects.select_related("zone")


def image_of_volume(image_id: uuid.UUID | None) -> Image | None:
    """The image a volume was made from (its `source_image`), deleted or not: a volume is a
    standalone copy, bootable after its image is gone; None for a volume made empty."""
    return Image.objects.filter(pk=image_id).first() if image_id is not None else None


def export_list(tenant: Tenant) -> QuerySet[Export]:
    """The tenant's exports, not deleted (erased ones are gone from the API)."""
    return (
        tenant_scoped(Export.objects.all(), tenant)
        .exclude(status=Export.Status.DELETED)
        .select_related("store__zone")
    )


def export_holdings(tenant: Tenant) -> list[Holding]:
    """The tenant's exports that hold (or are about to hold) a file, with their store's zone
    ("where is my data": an export is a copy of the tenant's data)."""
    exports = export_list(tenant).order_by("name", "id")
    return [
        Holding(
            id=str(export.pk),
            name=export.name,
            status=export.status,
            zone_id=export.store.zone_id if export.status != Export.Status.ERROR else None,
        )
        for export in exports
    ]
