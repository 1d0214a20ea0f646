"""The tenant's floating IPs: list (address, status, what it points to), allocate from an
external network, associate with an instance's port, disassociate, release. The services
are the API's (network/api/floating_ips.py); another tenant's address or port is a 404."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from iaas.errors import DomainError
from network import selectors
from network.models import FloatingIP, Port
from network.services import floating_ips as floating_services
from portal.errors import message_for
from portal.forms.network import AssociateForm, FloatingIPForm
from portal.tenancy import TenantPage, tenant_page
from portal.views.networks import attempt, device_names
from portal.views.routers import external_networks


def _floating_or_404(page: TenantPage, floating_ip_id: uuid.UUID) -> FloatingIP:
    return get_object_or_404(
        selectors.floating_ip_list(page.tenant).select_related("router"), pk=floating_ip_id
    )


def _targets(page: TenantPage, floating: FloatingIP) -> list[tuple[str, str]]:
    """The ports a floating IP may point to, labelled for a person: the tenant's own ports
    that are not the network's plumbing, with an IPv4 address and no other floating IP."""
    ports = list(
        selectors.port_list(page.tenant)
        .exclude(device_owner__startswith="network:")
        .order_by("created_at")
    )
    held = set(
        selectors.floating_ip_list(page.tenant)
        .exclude(pk=floating.pk)
        .filter(port__isnull=False)
        .values_list("port_id", flat=True)
    )
    devices = device_names(page.tenant, ports)
    targets = []
    for port in ports:
        address = selectors.first_address(port)
        if address is None or port.pk in held:
            continue
        device = devices.get(port.pk)
        owner = f"{device['kind']} {device['name']}" if device else (port.name or _("free port"))
        targets.append((str(port.pk), f"{owner} — {address.ip} ({port.network.name})"))
    return targets


def _rows(page: TenantPage, floating_ips: list[FloatingIP]) -> list[dict[str, Any]]:
    devices = device_names(page.tenant, [f.port for f in floating_ips if f.port is not None])
    return [
        {"floating": f, "device": devices.get(f.port_id) if f.port_id else None}
        for f in floating_ips
    ]


@require_GET
@tenant_page
def floating_ip_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    floating_ips = list(
        selectors.floating_ip_list(page.tenant).select_related("router").order_by("created_at")
    )
    context = {"rows": _rows(page, floating_ips), "externals": external_networks(page)}
    return render(request, "portal/network/floating_ips.html", context)


@require_http_methods(["GET", "POST"])
@tenant_page
def floating_ip_create(request: HttpRequest, page: TenantPage) -> HttpResponse:
    externals = external_networks(page)
    form = FloatingIPForm(request.POST or None, externals=externals)
    if request.method == "POST" and form.is_valid():
        network = get_object_or_404(
            selectors.network_list(page.tenant), pk=form.cleaned_data["network"]
        )
        try:
            floating = floating_services.floating_ip_create(
                actor=page.actor,
                tenant=page.tenant,
                network=network,
                description=form.cleaned_data["description"],
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            messages.success(
                request, _("Floating IP %(address)s allocated.") % {"address": floating.address}
            )
            return redirect(
                "portal:floating-ip", tenant=page.tenant.slug, floating_ip_id=floating.pk
            )
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "externals": externals}
    return render(request, "portal/network/floating_ip_form.html", context, status=status)


@require_GET
@tenant_page
def floating_ip_detail(
    request: HttpRequest, page: TenantPage, floating_ip_id: uuid.UUID
) -> HttpResponse:
    floating = _floating_or_404(page, floating_ip_id)
    targets = _targets(page, floating)
    initial = {"port": str(floating.port_id)} if floating.port_id else {}
    context = {
        "floating": floating,
        "row": _rows(page, [floating])[0],
        "form": AssociateForm(initial=initial, targets=targets),
    }
    return render(request, "portal/network/floating_ip.html", context)


@require_POST
@tenant_page
def floating_ip_associate(
    request: HttpRequest, page: TenantPage, floating_ip_id: uuid.UUID
) -> HttpResponse:
    floating = _floating_or_404(page, floating_ip_id)
    back = redirect("portal:floating-ip", tenant=page.tenant.slug, floating_ip_id=floating.pk)
    try:
        port_id = uuid.UUID(request.POST.get("port", ""))
    except ValueError:
        messages.error(request, _("Choose the instance address to associate."))
        return back
    # Any port of the tenant's is accepted here and the service decides, as the API's
    # reference field does; another tenant's port is a 404.
    port: Port = get_object_or_404(selectors.port_list(page.tenant), pk=port_id)
    done = attempt(
        request,
        lambda: floating_services.floating_ip_update(
            actor=page.actor, floating=floating, port=port
        ),
    )
    if done:
        messages.success(
            request,
            _("%(address)s now forwards to %(fixed)s.")
            % {"address": floating.address, "fixed": _first_ip(port)},
        )
    return back


def _first_ip(port: Port) -> str:
    address = selectors.first_address(port)
    return address.ip if address is not None else str(port.pk)


@require_POST
@tenant_page
def floating_ip_disassociate(
    request: HttpRequest, page: TenantPage, floating_ip_id: uuid.UUID
) -> HttpResponse:
    floating = _floating_or_404(page, floating_ip_id)
    done = attempt(
        request,
        lambda: floating_services.floating_ip_update(
            actor=page.actor, floating=floating, port=None
        ),
    )
    if done:
        messages.success(
            request, _("%(address)s is no longer associated.") % {"address": floating.address}
        )
    return redirect("portal:floating-ip", tenant=page.tenant.slug, floating_ip_id=floating.pk)


@require_http_methods(["GET", "POST"])
@tenant_page
def floating_ip_delete(
    request: HttpRequest, page: TenantPage, floating_ip_id: uuid.UUID
) -> HttpResponse:
    floating = _floating_or_404(page, floating_ip_id)
    if request.method == "POST":
        done = attempt(
            request,
            lambda: floating_services.floating_ip_delete(actor=page.actor, floating=floating),
        )
        if done:
            messages.success(
                request, _("Floating IP %(address)s released.") % {"address": floating.address}
            )
            return redirect("portal:floating-ips", tenant=page.tenant.slug)
        return redirect("portal:floating-ip", tenant=page.tenant.slug, floating_ip_id=floating.pk)
    return render(
        request,
        "portal/network/floating_ip_delete.html",
        {"floating": floating, "row": _rows(page, [floating])[0]},
    )


urlpatterns = [
    path("floating-ips/", floating_ip_list, name="floating-ips"),
    path("floating-ips/new/", floating_ip_create, name="floating-ip-create"),
    path("floating-ips/<uuid:floating_ip_id>/", floating_ip_detail, name="floating-ip"),
    path(
        "floating-ips/<uuid:floating_ip_id>/delete/",
        floating_ip_delete,
        name="floating-ip-delete",
    ),
    path(
        "floating-ips/<uuid:floating_ip_id>/associate/",
        floating_ip_associate,
        name="floating-ip-associate",
    ),
    path(
        "floating-ips/<uuid:floating_ip_id>/disassociate/",
        floating_ip_disassociate,
        name="floating-ip-disassociate",
    ),
]
