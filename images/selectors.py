"""Reads of images: a tenant sees its own private images and the public ones."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from images.models import Image
from tenants.models import Tenant
from tenants.selectors import tenant_scoped


def image_list(tenant: Tenant) -> QuerySet[Image]:
    """The images this tenant sees: its own private ones and the public ones, not deleted."""
    visible = tenant_scoped(Image.objects.all(), tenant) | Image.objects.filter(
        visibility=Image.Visibility.PUBLIC
    )
    return visible.exclude(status=Image.Status.DELETED)


def image_find(tenant: Tenant, image_id: uuid.UUID | str) -> Image | None:
    """One image the tenant may boot or read, or None."""
    return image_list(tenant).filter(pk=image_id).first()


def image_list_all() -> QuerySet[Image]:
    """Operators only: every tenant's images and the public ones, not deleted."""
    return Image.objects.exclude(status=Image.Status.DELETED)
