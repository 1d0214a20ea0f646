"""The tenant pages' side menu: one entry per area, in the order shown. An area adds its
entry here when its pages exist (its URL name, its label)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

TENANT_AREAS: list[tuple[str, Any]] = [
    ("portal:networks", _("Networks")),
    ("portal:routers", _("Routers")),
    ("portal:security-groups", _("Security groups")),
    ("portal:floating-ips", _("Floating IPs")),
]


def tenant_nav(request: HttpRequest) -> dict[str, Any]:
    """Context processor: `tenant_nav` for pages under /t/<tenant>/ (see tenant_base.html)."""
    page = getattr(request, "portal_page", None)
    if page is None:
        return {}
    items = []
    for name, label in TENANT_AREAS:
        url = reverse(name, kwargs={"tenant": page.tenant.slug})
        items.append({"url": url, "label": label, "current": request.path.startswith(url)})
    return {"tenant_nav": items, "page": page}
