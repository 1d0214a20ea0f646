"""The tenant's routers: list, create (with a gateway on an external network or none),
detail with interfaces (add one on a subnet, remove one), set or clear the external gateway,
delete. The services are the API's (network/api/routers.py); another tenant's router or
subnet is a 404."""

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
from network.models import Network, Port, Router, Subnet
from network.services import routers as router_services
from portal.errors import message_for
from portal.forms.network import GatewayForm, InterfaceForm, RouterForm
from portal.tenancy import TenantPage, tenant_page
from portal.views.networks import attempt


def external_networks(page: TenantPage) -> list[Network]:
    return list(selectors.network_list(page.tenant).filter(external=True).order_by("name"))


def _external_or_none(page: TenantPage, network_id: str) -> Network | None:
    """The chosen external network (a visible one: anything else is a 404), or None."""
    if not network_id:
        return None
    return get_object_or_404(selectors.network_list(page.tenant), pk=network_id)


def _router_or_404(page: TenantPage, router_id: uuid.UUID) -> Router:
    return get_object_or_404(selectors.router_list(page.tenant), pk=router_id)


def _free_subnets(page: TenantPage, router: Router) -> list[Subnet]:
    """The tenant's own subnets with a gateway address and no router yet: the ones an
    interface can be added on."""
    taken = Port.objects.filter(device_owner=Port.Owner.ROUTER_INTERFACE, tenant=page.tenant)
    return list(
        selectors.subnet_list(page.tenant)
        .filter(tenant=page.tenant, gateway_ip__isnull=False)
        .exclude(fixed_ips__port__in=taken)
        .order_by("network__name", "cidr")
    )


@require_GET
@tenant_page
def router_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    routers = selectors.router_list(page.tenant).order_by("name")
    rows = []
    for router in routers:
        gateway = selectors.router_gateway_port(router)
        rows.append(
            {
                "router": router,
                "gateway": gateway,
                "interfaces": selectors.router_interfaces(router).count(),
            }
        )
    return render(request, "portal/network/routers.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@tenant_page
def router_create(request: HttpRequest, page: TenantPage) -> HttpResponse:
    externals = external_networks(page)
    form = RouterForm(request.POST or None, externals=externals)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            router = router_services.router_create(
                actor=page.actor,
                tenant=page.tenant,
                name=data["name"],
                external_network=_external_or_none(page, data["external_network"]),
                enable_snat=data["enable_snat"],
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            messages.success(request, _("Router %(name)s created.") % {"name": router.name})
            return redirect("portal:router", tenant=page.tenant.slug, router_id=router.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "externals": externals}
    return render(request, "portal/network/router_form.html", context, status=status)


def _interfaces(router: Router) -> list[dict[str, Any]]:
    rows = []
    for port in selectors.router_interfaces(router).prefetch_related("fixed_ips__subnet__network"):
        for fixed in port.fixed_ips.all():
            rows.append({"port": port, "subnet": fixed.subnet, "ip": fixed.ip})
    return rows


@require_GET
@tenant_page
def router_detail(request: HttpRequest, page: TenantPage, router_id: uuid.UUID) -> HttpResponse:
    router = _router_or_404(page, router_id)
    externals = external_networks(page)
    initial = {"external_network": str(router.external_network_id or "")}
    context = {
        "router": router,
        "gateway": selectors.router_gateway_port(router),
        "interfaces": _interfaces(router),
        "interface_form": InterfaceForm(subnets=_free_subnets(page, router)),
        "gateway_form": GatewayForm(initial=initial, externals=externals),
        "floating_ips": selectors.floating_ip_list(page.tenant).filter(router=router).count(),
    }
    return render(request, "portal/network/router.html", context)


@require_POST
@tenant_page
def router_interface_add(
    request: HttpRequest, page: TenantPage, router_id: uuid.UUID
) -> HttpResponse:
    router = _router_or_404(page, router_id)
    # Any subnet the tenant may see is accepted here and the service decides (as the API's
    # reference field does); another tenant's subnet is a 404.
    try:
        subnet_id = uuid.UUID(request.POST.get("subnet", ""))
    except ValueError:
        messages.error(request, _("Choose a subnet."))
    else:
        subnet = get_object_or_404(selectors.subnet_list(page.tenant), pk=subnet_id)
        done = attempt(
            request,
            lambda: router_services.router_add_interface(
                actor=page.actor, router=router, subnet=subnet
            ),
        )
        if done:
            messages.success(
                request, _("The router now has an interface on %(cidr)s.") % {"cidr": subnet.cidr}
            )
    return redirect("portal:router", tenant=page.tenant.slug, router_id=router.pk)


@require_POST
@tenant_page
def router_interface_remove(
    request: HttpRequest, page: TenantPage, router_id: uuid.UUID, subnet_id: uuid.UUID
) -> HttpResponse:
    router = _router_or_404(page, router_id)
    subnet = get_object_or_404(selectors.subnet_list(page.tenant), pk=subnet_id)
    done = attempt(
        request,
        lambda: router_services.router_remove_interface(
            actor=page.actor, router=router, subnet=subnet
        ),
    )
    if done:
        messages.success(
            request, _("The interface on %(cidr)s was removed.") % {"cidr": subnet.cidr}
        )
    return redirect("portal:router", tenant=page.tenant.slug, router_id=router.pk)


@require_POST
@tenant_page
def router_gateway(request: HttpRequest, page: TenantPage, router_id: uuid.UUID) -> HttpResponse:
    """Set the external gateway (a network chosen) or clear it (none chosen)."""
    router = _router_or_404(page, router_id)
    form = GatewayForm(request.POST, externals=external_networks(page))
    if not form.is_valid():
        messages.error(request, _("Choose one of the external networks offered, or none."))
        return redirect("portal:router", tenant=page.tenant.slug, router_id=router.pk)
    network = _external_or_none(page, form.cleaned_data["external_network"])
    done = attempt(
        request,
        lambda: router_services.router_update(
            actor=page.actor, router=router, external_network=network
        ),
    )
    if done:
        if network is None:
            messages.success(request, _("The router's external gateway was cleared."))
        else:
            messages.success(
                request,
                _("The router's external gateway is now on %(name)s.") % {"name": network.name},
            )
    return redirect("portal:router", tenant=page.tenant.slug, router_id=router.pk)


@require_http_methods(["GET", "POST"])
@tenant_page
def router_delete(request: HttpRequest, page: TenantPage, router_id: uuid.UUID) -> HttpResponse:
    router = _router_or_404(page, router_id)
    if request.method == "POST":
        if attempt(request, lambda: router_services.router_delete(actor=page.actor, router=router)):
            messages.success(request, _("Router %(name)s deleted.") % {"name": router.name})
            return redirect("portal:routers", tenant=page.tenant.slug)
        return redirect("portal:router", tenant=page.tenant.slug, router_id=router.pk)
    context = {"router": router, "interfaces": _interfaces(router)}
    return render(request, "portal/network/router_delete.html", context)


urlpatterns = [
    path("routers/", router_list, name="routers"),
    path("routers/new/", router_create, name="router-create"),
    path("routers/<uuid:router_id>/", router_detail, name="router"),
    path("routers/<uuid:router_id>/delete/", router_delete, name="router-delete"),
    path("routers/<uuid:router_id>/gateway/", router_gateway, name="router-gateway"),
    path(
        "routers/<uuid:router_id>/interfaces/add/",
        router_interface_add,
        name="router-interface-add",
    ),
    path(
        "routers/<uuid:router_id>/interfaces/<uuid:subnet_id>/remove/",
        router_interface_remove,
        name="router-interface-remove",
    ),
]
