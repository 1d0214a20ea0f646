"""The tenant pages' side menu: one entry per area, in the order shown. An area adds its
entry here when its pages exist (its URL name, its label)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tenants.models import Role

TENANT_AREAS: list[tuple[str, Any]] = [
    ("portal:instances", _("Instances")),
    ("portal:images", _("Images")),
    ("portal:volumes", _("Volumes")),
    ("portal:networks", _("Networks")),
    ("portal:routers", _("Routers")),
    ("portal:security-groups", _("Security groups")),
    ("portal:floating-ips", _("Floating IPs")),
    ("portal:keypairs", _("SSH keys")),
    ("portal:members", _("Members")),
    ("portal:tokens", _("API tokens")),
    ("portal:audit", _("Audit log")),
    ("portal:tenant-settings", _("Settings")),
]

# Areas only some roles may read (as the API's `read_role`): not shown to the others.
AREA_READ_ROLE: dict[str, str] = {
    "portal:audit": Role.ADMIN,
}


def tenant_nav(request: HttpRequest) -> dict[str, Any]:
    """Context processor: `tenant_nav` for pages under /t/<tenant>/ (see tenant_base.html)."""
    page = getattr(request, "portal_page", None)
    if page is None:
        return {}
    items = []
    for name, label in TENANT_AREAS:
        if not page.allows(AREA_READ_ROLE.get(name, Role.READER)):
            continue
        url = reverse(name, kwargs={"tenant": page.tenant.slug})
        items.append({"url": url, "label": label, "current": request.path.startswith(url)})
    return {"tenant_nav": items, "page": page}
