"""The tenant's audit log, as the API has it (tenants/api/audit_events.py): for tenant admins
only (`TenantAuditEventViewSet.read_role`), newest first, filtered by the API's own filter
set, and exported as the API exports it (JSON lines, oldest first, streamed)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from iaas.audit.selectors import audit_events_for_tenant
from portal.forms.people import AuditFilterForm
from portal.labels import role_label
from portal.tenancy import TenantPage, tenant_page
from tenants.api.audit_events import _jsonlines as audit_jsonlines
from tenants.api.filtersets import AuditEventFilterSet
from tenants.models import Role

PAGE_SIZE = 50


def _admin_only(page: TenantPage) -> None:
    if not page.is_admin:
        raise PermissionDenied(
            _("This needs the %(required)s role; you are %(role)s in this tenant.")
            % {"required": role_label(Role.ADMIN), "role": role_label(page.role)}
        )


def _filtered(request: HttpRequest, page: TenantPage) -> tuple[AuditFilterForm, QuerySet[Any]]:
    """The filter form and the tenant's events it selects (all of them while it is invalid:
    the form then says what to correct)."""
    events = audit_events_for_tenant(page.tenant.pk)
    actions = list(events.order_by("action").values_list("action", flat=True).distinct())
    form = AuditFilterForm(request.GET or None, actions=actions)
    if form.is_bound and form.is_valid():
        filterset = AuditEventFilterSet(data=form.api_filters(), queryset=events)
        events = filterset.qs
    return form, events


def _query(form: AuditFilterForm, **extra: Any) -> str:
    params = {k: v for k, v in form.data.items() if k in form.fields and v} if form.is_bound else {}
    params.update({k: v for k, v in extra.items() if v is not None})
    return urlencode(params)


def _list_page(request: HttpRequest, page: TenantPage, *, status: int = 200) -> HttpResponse:
    form, events = _filtered(request, page)
    before = request.GET.get("before", "")
    if before.isdigit():
        events = events.filter(id__lt=int(before))
    rows = list(events.order_by("-id")[: PAGE_SIZE + 1])
    rows, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    older = rows[-1].id if more else None
    context = {
        "form": form,
        "events": rows,
        "older_query": _query(form, before=older) if older is not None else None,
        "newest_query": _query(form) if before.isdigit() else None,
        "export_query": _query(form),
    }
    if form.is_bound and not form.is_valid():
        status = 400
    return render(request, "portal/people/audit.html", context, status=status)


@require_GET
@tenant_page(write_role=Role.ADMIN)
def audit_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    _admin_only(page)
    return _list_page(request, page)


@require_GET
@tenant_page(write_role=Role.ADMIN)
def audit_event(request: HttpRequest, page: TenantPage, event_id: int) -> HttpResponse:
    _admin_only(page)
    event = get_object_or_404(audit_events_for_tenant(page.tenant.pk), pk=event_id)
    details = json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return render(
        request, "portal/people/audit_event.html", {"event": event, "details_json": details}
    )


@require_GET
@tenant_page(write_role=Role.ADMIN)
def audit_export(request: HttpRequest, page: TenantPage) -> HttpResponseBase:
    """The API's export (`GET /audit-events/export`) of the filtered events: JSON lines,
    oldest first, one event per line as the API lists it."""
    _admin_only(page)
    form, events = _filtered(request, page)
    if form.is_bound and not form.is_valid():
        return _list_page(request, page, status=400)
    response = StreamingHttpResponse(
        audit_jsonlines(events.order_by("id")), content_type="application/x-ndjson"
    )
    filename = f"audit-events-{page.tenant.slug}.jsonl"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


urlpatterns = [
    path("audit/", audit_list, name="audit"),
    path("audit/export/", audit_export, name="audit-export"),
    path("audit/<int:event_id>/", audit_event, name="audit-event"),
]
