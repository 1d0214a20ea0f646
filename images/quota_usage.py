"""How images count against quotas: from the image rows themselves."""

from __future__ import annotations

from django.db.models import Sum

from images.models import Image
from tenants.models import Tenant

GIB = 1024**3


def images_in_use(tenant: Tenant) -> int:
    return Image.objects.filter(tenant=tenant).exclude(status=Image.Status.DELETED).count()


def image_bytes_in_use(tenant: Tenant) -> int:
    """Bytes the tenant's kept image files take in the stores (files still arriving count
    when they are kept: `image_gb` is checked then, under the tenant's lock)."""
    total = (
        Image.objects.filter(tenant=tenant, size_bytes__isnull=False)
        .exclude(status=Image.Status.DELETED)
        .aggregate(total=Sum("size_bytes"))["total"]
    )
    return int(total or 0)


def image_gb_in_use(tenant: Tenant) -> int:
    """The `image_gb` quota's usage: the stored bytes of the tenant's images, in GiB rounded
    up (review M7: images were counted, never sized)."""
    return -(-image_bytes_in_use(tenant) // GIB)
