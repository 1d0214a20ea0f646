"""The tenant's networks and their subnets: list, create (with an optional first subnet),
detail (subnets, ports with their addresses and devices), add and delete a subnet, delete a
network. Writes call the network services as the API does (network/api/networks.py,
subnets.py); reads go through network.selectors, so another tenant's network is a 404 and an
operator's shared or external network is shown, never changed."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from compute import selectors as compute_selectors
from iaas.errors import DomainError, PermissionDeniedError
from network import selectors
from network.models import FloatingIP, Network, Port, Subnet
from network.services import ipam
from network.services import networks as network_services
from network.services import subnets as subnet_services
from portal.errors import message_for
from portal.forms.network import NetworkForm, SubnetForm
from portal.tenancy import TenantPage, tenant_page


def attempt(request: HttpRequest, change: Callable[[], Any]) -> bool:
    """Run a service call; a refusal becomes an error message in the user's language
    (nothing changed: the service's transaction rolled back). True when it was done."""
    try:
        change()
    except DomainError as error:
        messages.error(request, message_for(error))
        return False
    return True


def owned(network: Network) -> Network:
    """As the API's `own`: an operator's network is used by tenants, never changed."""
    if network.tenant_id is None:
        raise PermissionDeniedError(
            f"{network.name} is an operator's network: you can use it, not change it.",
            code="operator_network",
        )
    return network


def device_names(tenant: Any, ports: Iterable[Port]) -> dict[uuid.UUID, dict[str, Any]]:
    """What each port serves, by port id: {"kind", "name", "url"} (url None when the device
    has no page here). Devices are named by id (DESIGN §1), looked up in the tenant's own."""
    ports = list(ports)
    ids = {p.device_id for p in ports if p.device_id}
    instances = dict(
        compute_selectors.instance_list(tenant).filter(pk__in=ids).values_list("pk", "name")
    )
    routers = dict(selectors.router_list(tenant).filter(pk__in=ids).values_list("pk", "name"))
    floating = dict(
        selectors.floating_ip_list(tenant).filter(pk__in=ids).values_list("pk", "address")
    )
    slug = tenant.slug
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for port in ports:
        device = port.device_id
        if device in instances:
            found[port.pk] = {"kind": _("instance"), "name": instances[device], "url": None}
        elif device in routers:
            url = reverse("portal:router", kwargs={"tenant": slug, "router_id": device})
            found[port.pk] = {"kind": _("router"), "name": routers[device], "url": url}
        elif device in floating:
            url = reverse("portal:floating-ip", kwargs={"tenant": slug, "floating_ip_id": device})
            found[port.pk] = {"kind": _("floating IP"), "name": floating[device], "url": url}
    return found


def _network_or_404(page: TenantPage, network_id: uuid.UUID) -> Network:
    return get_object_or_404(selectors.network_list(page.tenant), pk=network_id)


@require_GET
@tenant_page
def network_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    tenant = page.tenant
    networks = (
        selectors.network_list(tenant)
        .annotate(port_count=Count("ports", filter=Q(ports__tenant=tenant), distinct=True))
        .order_by("tenant_id", "name")
    )
    return render(request, "portal/network/networks.html", {"networks": list(networks)})


@require_http_methods(["GET", "POST"])
@tenant_page
def network_create(request: HttpRequest, page: TenantPage) -> HttpResponse:
    form = NetworkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        created: dict[str, Network] = {}

        def create() -> None:
            # One transaction: a refused first subnet leaves no network behind.
            with transaction.atomic():
                network = network_services.network_create(
                    actor=page.actor,
                    tenant=page.tenant,
                    name=data["name"],
                    description=data["description"],
                )
                if data["cidr"]:
                    subnet_services.subnet_create(
                        actor=page.actor,
                        tenant=page.tenant,
                        network=network,
                        **form.subnet_arguments(),
                    )
            created["network"] = network

        try:
            create()
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            network = created["network"]
            messages.success(request, _("Network %(name)s created.") % {"name": network.name})
            return redirect("portal:network", tenant=page.tenant.slug, network_id=network.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/network/network_form.html", {"form": form}, status=status)


@require_GET
@tenant_page
def network_detail(request: HttpRequest, page: TenantPage, network_id: uuid.UUID) -> HttpResponse:
    tenant = page.tenant
    network = _network_or_404(page, network_id)
    subnets = [
        {"subnet": subnet, "usage": ipam.subnet_usage(subnet)}
        for subnet in network.subnets.order_by("created_at")
    ]
    # Only the tenant's own ports, also on an operator's shared or external network.
    ports = list(
        selectors.port_list(tenant)
        .filter(network=network)
        .prefetch_related("fixed_ips__subnet")
        .order_by("created_at")
    )
    devices = device_names(tenant, ports)
    rows = [{"port": port, "device": devices.get(port.pk)} for port in ports]
    context = {
        "network": network,
        "subnets": subnets,
        "ports": rows,
        "owned": network.tenant_id is not None,
    }
    return render(request, "portal/network/network.html", context)


@require_http_methods(["GET", "POST"])
@tenant_page
def network_delete(request: HttpRequest, page: TenantPage, network_id: uuid.UUID) -> HttpResponse:
    network = _network_or_404(page, network_id)
    if request.method == "POST":
        done = attempt(
            request,
            lambda: network_services.network_delete(actor=page.actor, network=owned(network)),
        )
        if done:
            messages.success(request, _("Network %(name)s deleted.") % {"name": network.name})
            return redirect("portal:networks", tenant=page.tenant.slug)
        return redirect("portal:network", tenant=page.tenant.slug, network_id=network.pk)
    context = {
        "network": network,
        "subnets": list(network.subnets.order_by("created_at")),
        "ports": selectors.port_list(page.tenant).filter(network=network).count(),
        "floating_ips": FloatingIP.objects.filter(network=network, tenant=page.tenant).count(),
    }
    return render(request, "portal/network/network_delete.html", context)


@require_http_methods(["GET", "POST"])
@tenant_page
def subnet_create(request: HttpRequest, page: TenantPage, network_id: uuid.UUID) -> HttpResponse:
    network = _network_or_404(page, network_id)
    form = SubnetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            subnet = subnet_services.subnet_create(
                actor=page.actor,
                tenant=page.tenant,
                network=owned(network),
                **form.subnet_arguments(),
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            messages.success(request, _("Subnet %(cidr)s added.") % {"cidr": subnet.cidr})
            return redirect("portal:network", tenant=page.tenant.slug, network_id=network.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "network": network}
    return render(request, "portal/network/subnet_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@tenant_page
def subnet_delete(
    request: HttpRequest, page: TenantPage, network_id: uuid.UUID, subnet_id: uuid.UUID
) -> HttpResponse:
    network = _network_or_404(page, network_id)
    subnet: Subnet = get_object_or_404(
        selectors.subnet_list(page.tenant), pk=subnet_id, network=network
    )
    back = reverse("portal:network", kwargs={"tenant": page.tenant.slug, "network_id": network.pk})
    if request.method == "POST":

        def delete() -> None:
            owned(network)
            subnet_services.subnet_delete(actor=page.actor, subnet=subnet)

        if attempt(request, delete):
            messages.success(request, _("Subnet %(cidr)s deleted.") % {"cidr": subnet.cidr})
        return redirect(back)
    context = {"network": network, "subnet": subnet, "usage": ipam.subnet_usage(subnet)}
    return render(request, "portal/network/subnet_delete.html", context)


urlpatterns = [
    path("networks/", network_list, name="networks"),
    path("networks/new/", network_create, name="network-create"),
    path("networks/<uuid:network_id>/", network_detail, name="network"),
    path("networks/<uuid:network_id>/delete/", network_delete, name="network-delete"),
    path("networks/<uuid:network_id>/subnets/new/", subnet_create, name="subnet-create"),
    path(
        "networks/<uuid:network_id>/subnets/<uuid:subnet_id>/delete/",
        subnet_delete,
        name="subnet-delete",
    ),
]
