"""A tenant's dashboard: its quotas as bars, its instances at a glance, recent operations."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from compute import selectors as compute_selectors
from operations import selectors as operation_selectors
from portal import labels
from portal.tenancy import TenantPage, tenant_page
from tenants.quotas import UNLIMITED, quota_lines


@require_GET
@tenant_page
def dashboard(request: HttpRequest, page: TenantPage) -> HttpResponse:
    tenant = page.tenant
    instances = compute_selectors.instance_list(tenant)
    quotas = [
        {
            "resource": line.resource,
            "label": labels.quota_label(line.resource),
            "usage": line.usage,
            "limit": None if line.limit == UNLIMITED else line.limit,
            "high": None if line.limit == UNLIMITED else 0.8 * line.limit,
        }
        for line in quota_lines(tenant)
    ]
    context = {
        "quotas": quotas,
        "running": instances.filter(status="active").count(),
        "total": instances.count(),
        "recent_instances": list(instances.order_by("-created_at")[:5]),
        "operations": list(operation_selectors.operation_list(tenant).order_by("-created_at")[:10]),
    }
    return render(request, "portal/dashboard.html", context)


urlpatterns = [path("", dashboard, name="dashboard")]
