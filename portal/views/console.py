"""The operator console (/ops/): what an operator looks at every morning — hosts per zone
with their capacity used and free, hosts down or in maintenance, operations failed or stuck
with their reason, tenants and their quotas, orphan reports, and the audit chain's last
verification. Django's admin stays for raw records. Operators only (`operator_page`):
anyone else gets a 404."""

from __future__ import annotations

import io
from datetime import timedelta
from itertools import groupby

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.management import CommandError, call_command
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from compute.selectors import instance_count_by_tenant
from hosts.models import Host
from hosts.selectors import host_list, orphan_list
from iaas.audit.selectors import last_verification
from operations.selectors import operations_failed_since, operations_unfinished_before
from portal.capacity import capacity_svg, host_gauges
from portal.forms.auth import PortalOperatorSignInForm
from portal.tenancy import operator_page
from tenants.quotas import quota_lines
from tenants.selectors import tenant_list

STUCK_AFTER = timedelta(minutes=10)
FAILED_WINDOW = timedelta(hours=24)
NOT_SERVING = {
    Host.State.DOWN, Host.State.MAINTENANCE, Host.State.DRAINING, Host.State.DISABLED,
    Host.State.ERROR,
}  # fmt: skip


def _zones() -> list[dict[str, object]]:
    hosts = list(host_list().order_by("zone__name", "name"))
    words = {"vcpus": _("vCPUs"), "memory_mb": _("Memory"), "disk_gb": _("Disk")}
    zones = []
    for zone, members in groupby(hosts, key=lambda host: host.zone):
        pairs = [(host, host_gauges(host)) for host in members]
        rows = [{"host": host, "gauges": gauges} for host, gauges in pairs]
        picture = capacity_svg(
            str(zone.pk),
            _("Capacity used per host in %(zone)s") % {"zone": zone.name},
            [(host.name, gauges) for host, gauges in pairs],
            words,
        )
        # lxml built it from our own figures and escaped every name.
        zones.append({"zone": zone, "hosts": rows, "svg": mark_safe(picture)})  # noqa: S308
    return zones


@require_GET
@operator_page
def overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    hosts = list(host_list())
    context = {
        "zones": _zones(),
        "hosts_out": [h for h in hosts if h.state in NOT_SERVING],
        "failed": list(operations_failed_since(now - FAILED_WINDOW)[:10]),
        "stuck": list(operations_unfinished_before(now - STUCK_AFTER)[:10]),
        "orphans": orphan_list().count(),
        "tenants": tenant_list().count(),
        "verification": last_verification(),
        "now": now,
    }
    return render(request, "portal/ops/overview.html", context)


@require_GET
@operator_page
def operations(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {
        "failed": list(operations_failed_since(now - timedelta(days=7))[:100]),
        "stuck": list(operations_unfinished_before(now - STUCK_AFTER)[:100]),
    }
    return render(request, "portal/ops/operations.html", context)


@require_GET
@operator_page
def tenants(request: HttpRequest) -> HttpResponse:
    counts = instance_count_by_tenant()
    shown = []
    for tenant in tenant_list().order_by("name")[:200]:
        lines = {line.resource: line for line in quota_lines(tenant)}
        shown.append(
            {
                "tenant": tenant,
                "instances": counts.get(tenant.pk, 0),
                "quotas": [lines[r] for r in ("instances", "vcpus", "ram_mb", "volume_gb")
                           if r in lines],
            }
        )  # fmt: skip
    return render(request, "portal/ops/tenants.html", {"tenants": shown})


@require_GET
@operator_page
def orphans(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/ops/orphans.html", {"orphans": list(orphan_list()[:500])})


@require_GET
@operator_page
def audit(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/ops/audit.html", {"verification": last_verification()})


@require_POST
@operator_page
def audit_verify(request: HttpRequest) -> HttpResponse:
    """Verify the chain now, exactly as `manage.py audit_verify` does (which records it)."""
    output = io.StringIO()
    try:
        call_command("audit_verify", by=request.user.get_username(), stdout=output)
    except CommandError:
        messages.error(request, _("The audit chain is BROKEN: see the verification below."))
    else:
        messages.success(request, _("The audit chain was verified."))
    return redirect("portal:ops-audit")


urlpatterns = [
    path(
        "ops/login/",
        auth_views.LoginView.as_view(
            template_name="portal/ops/login.html",
            authentication_form=PortalOperatorSignInForm,
            next_page="portal:ops",
        ),
        name="ops-login",
    ),
    path("ops/", overview, name="ops"),
    path("ops/operations/", operations, name="ops-operations"),
    path("ops/tenants/", tenants, name="ops-tenants"),
    path("ops/orphans/", orphans, name="ops-orphans"),
    path("ops/audit/", audit, name="ops-audit"),
    path("ops/audit/verify/", audit_verify, name="ops-audit-verify"),
]
