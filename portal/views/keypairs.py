"""SSH keypairs: list, import a public key, generate one (the private key is shown once,
on the answer to the request that made it, and never kept), delete."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from compute import selectors
from compute.models import KeyPair
from compute.services import keypairs as keypair_services
from iaas.errors import DomainError
from portal.errors import message_for
from portal.forms.compute import KeypairGenerateForm, KeypairImportForm
from portal.tenancy import TenantPage, tenant_page


@require_GET
@tenant_page
def keypair_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    keypairs = list(selectors.keypair_list(page.tenant).order_by("name"))
    return render(request, "portal/keypairs/list.html", {"keypairs": keypairs})


@require_http_methods(["GET", "POST"])
@tenant_page
def keypair_import(request: HttpRequest, page: TenantPage) -> HttpResponse:
    form = KeypairImportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            keypair_services.keypair_import(
                actor=page.actor,
                tenant=page.tenant,
                name=form.cleaned_data["name"],
                public_key=form.cleaned_data["public_key"],
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            messages.success(request, _("The key %(name)s was imported.") % form.cleaned_data)
            return redirect("portal:keypairs", tenant=page.tenant.slug)
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/keypairs/import.html", {"form": form}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@tenant_page
def keypair_generate(request: HttpRequest, page: TenantPage) -> HttpResponse:
    form = KeypairGenerateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            keypair, private_key = keypair_services.keypair_generate(
                actor=page.actor, tenant=page.tenant, name=form.cleaned_data["name"]
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            return render(
                request,
                "portal/keypairs/generated.html",
                {"keypair": keypair, "private_key": private_key},
            )
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/keypairs/generate.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
@tenant_page
def keypair_delete(request: HttpRequest, page: TenantPage, keypair_id: UUID) -> HttpResponse:
    keypair: KeyPair = get_object_or_404(selectors.keypair_list(page.tenant), pk=keypair_id)
    if request.method == "GET":
        return render(request, "portal/keypairs/delete.html", {"keypair": keypair})
    keypair_services.keypair_delete(actor=page.actor, keypair=keypair)
    messages.success(request, _("The key %(name)s was deleted.") % {"name": keypair.name})
    return redirect("portal:keypairs", tenant=page.tenant.slug)


urlpatterns = [
    path("keypairs/", keypair_list, name="keypairs"),
    path("keypairs/import/", keypair_import, name="keypair-import"),
    path("keypairs/generate/", keypair_generate, name="keypair-generate"),
    path("keypairs/<uuid:keypair_id>/delete/", keypair_delete, name="keypair-delete"),
]
