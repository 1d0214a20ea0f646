"""The tenant's settings, as the API shows them (`GET /tenant`, any role): its residency
policy and whether every member must use a second factor. The API lets no tenant role
change them (tenants/api/tenant.py has no write): the cloud's operators set them, so the
page says whom to ask instead of offering a form the API would refuse."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from portal.tenancy import TenantPage, tenant_page


@require_GET
@tenant_page
def tenant_settings(request: HttpRequest, page: TenantPage) -> HttpResponse:
    tenant = page.tenant
    context = {
        "tenant": tenant,
        "residency": list(tenant.residency),
    }
    return render(request, "portal/people/tenant_settings.html", context)


urlpatterns = [path("settings/", tenant_settings, name="tenant-settings")]
