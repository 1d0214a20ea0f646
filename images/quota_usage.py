"""How images count against quotas: from the image rows themselves."""

from __future__ import annotations

from images.models import Image
from tenants.models import Tenant


def images_in_use(tenant: Tenant) -> int:
    return Image.objects.filter(tenant=tenant).exclude(status=Image.Status.DELETED).count()
