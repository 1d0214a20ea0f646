"""The tenant's security groups: list, create, detail with rules (add a rule, delete one),
delete a group (the default group is refused by the service, as in the API). The services
are the API's (network/api/security_groups.py); another tenant's group or rule is a 404."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from iaas.errors import DomainError
from network import selectors
from network.models import SecurityGroup, SecurityGroupRule
from network.services import security_groups as group_services
from portal.errors import message_for
from portal.forms.network import RuleForm, SecurityGroupForm
from portal.tenancy import TenantPage, tenant_page
from portal.views.networks import attempt


def _group_or_404(page: TenantPage, security_group_id: uuid.UUID) -> SecurityGroup:
    return get_object_or_404(selectors.security_group_list(page.tenant), pk=security_group_id)


@require_GET
@tenant_page
def security_group_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    groups = (
        selectors.security_group_list(page.tenant)
        .annotate(
            rule_count=Count("rules", distinct=True), port_count=Count("ports", distinct=True)
        )
        .order_by("-is_default", "name")
    )
    return render(request, "portal/network/security_groups.html", {"groups": list(groups)})


@require_http_methods(["GET", "POST"])
@tenant_page
def security_group_create(request: HttpRequest, page: TenantPage) -> HttpResponse:
    form = SecurityGroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = group_services.security_group_create(
                actor=page.actor, tenant=page.tenant, **form.cleaned_data
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            messages.success(
                request,
                _("Security group %(name)s created: it lets everything out and nothing in. "
                  "Add rules for what may come in.") % {"name": group.name},
            )  # fmt: skip
            return redirect(
                "portal:security-group", tenant=page.tenant.slug, security_group_id=group.pk
            )
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/network/security_group_form.html", {"form": form}, status=status)


@require_GET
@tenant_page
def security_group_detail(
    request: HttpRequest, page: TenantPage, security_group_id: uuid.UUID
) -> HttpResponse:
    group = _group_or_404(page, security_group_id)
    rules = group.rules.select_related("remote_group").order_by("direction", "created_at")
    context = {
        "group": group,
        "rules": list(rules),
        "ports": group.ports.count(),
    }
    return render(request, "portal/network/security_group.html", context)


@require_http_methods(["GET", "POST"])
@tenant_page
def security_group_delete(
    request: HttpRequest, page: TenantPage, security_group_id: uuid.UUID
) -> HttpResponse:
    group = _group_or_404(page, security_group_id)
    if request.method == "POST":
        done = attempt(
            request, lambda: group_services.security_group_delete(actor=page.actor, group=group)
        )
        if done:
            messages.success(request, _("Security group %(name)s deleted.") % {"name": group.name})
            return redirect("portal:security-groups", tenant=page.tenant.slug)
        return redirect(
            "portal:security-group", tenant=page.tenant.slug, security_group_id=group.pk
        )
    context = {"group": group, "ports": group.ports.count()}
    return render(request, "portal/network/security_group_delete.html", context)


@require_http_methods(["GET", "POST"])
@tenant_page
def rule_create(
    request: HttpRequest, page: TenantPage, security_group_id: uuid.UUID
) -> HttpResponse:
    group = _group_or_404(page, security_group_id)
    groups = list(selectors.security_group_list(page.tenant).order_by("name"))
    form = RuleForm(request.POST or None, groups=groups)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        remote_group = None
        if data["remote_group"]:
            remote_group = get_object_or_404(
                selectors.security_group_list(page.tenant), pk=data["remote_group"]
            )
        try:
            group_services.security_group_rule_create(
                actor=page.actor,
                group=group,
                direction=data["direction"],
                ethertype=data["ethertype"],
                protocol=data["protocol"],
                port_range_min=data["port_range_min"],
                port_range_max=data["port_range_max"],
                remote_ip_prefix=data["remote_ip_prefix"],
                remote_group=remote_group,
                description=data["description"],
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            messages.success(request, _("Rule added."))
            return redirect(
                "portal:security-group", tenant=page.tenant.slug, security_group_id=group.pk
            )
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "group": group}
    return render(request, "portal/network/rule_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@tenant_page
def rule_delete(
    request: HttpRequest, page: TenantPage, security_group_id: uuid.UUID, rule_id: uuid.UUID
) -> HttpResponse:
    group = _group_or_404(page, security_group_id)
    rule: SecurityGroupRule = get_object_or_404(
        selectors.security_group_rule_list(page.tenant).select_related("remote_group"),
        pk=rule_id,
        security_group=group,
    )
    if request.method == "POST":
        done = attempt(
            request, lambda: group_services.security_group_rule_delete(actor=page.actor, rule=rule)
        )
        if done:
            messages.success(request, _("Rule deleted."))
        return redirect(
            "portal:security-group", tenant=page.tenant.slug, security_group_id=group.pk
        )
    return render(request, "portal/network/rule_delete.html", {"group": group, "rule": rule})


urlpatterns = [
    path("security-groups/", security_group_list, name="security-groups"),
    path("security-groups/new/", security_group_create, name="security-group-create"),
    path(
        "security-groups/<uuid:security_group_id>/",
        security_group_detail,
        name="security-group",
    ),
    path(
        "security-groups/<uuid:security_group_id>/delete/",
        security_group_delete,
        name="security-group-delete",
    ),
    path(
        "security-groups/<uuid:security_group_id>/rules/new/",
        rule_create,
        name="security-group-rule-create",
    ),
    path(
        "security-groups/<uuid:security_group_id>/rules/<uuid:rule_id>/delete/",
        rule_delete,
        name="security-group-rule-delete",
    ),
]
