"""Instances: the list (live status, without reloading), the create form, the detail page
(addresses, volumes, operation history with step timings), the console, and every verb —
each through compute.services, as the API does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compute import selectors
from compute.models import Instance
from compute.services import console as console_services
from compute.services import instances as instance_services
from compute.services import interfaces as interface_services
from compute.services import resize as resize_services
from compute.services import volumes as volume_services
from iaas.errors import DomainError
from network import selectors as network_selectors
from network.services.devices import NicRequest
from operations import selectors as operation_selectors
from portal.errors import message_for
from portal.forms.compute import (
    InstanceCreateForm,
    InterfaceAttachForm,
    RebootForm,
    RebuildForm,
    ResizeForm,
    SnapshotForm,
    VolumeAttachForm,
)
from portal.steps import with_step_timings
from portal.tenancy import TenantPage, tenant_page
from volumes import selectors as volume_selectors

# Statuses and task states during which a page keeps asking for news (htmx polling).
SETTLED = {"active", "stopped", "error", "verify_resize", "deleted"}


def _busy(instance: Instance) -> bool:
    return instance.status not in SETTLED or instance.task_state is not None


def _instance(page: TenantPage, instance_id: UUID) -> Instance:
    return get_object_or_404(selectors.instance_list(page.tenant), pk=instance_id)


@require_GET
@tenant_page
def instance_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    instances = list(selectors.instance_list(page.tenant).order_by("name", "created_at"))
    return render(
        request,
        "portal/instances/list.html",
        {"instances": instances, "busy": any(_busy(i) for i in instances)},
    )


@require_http_methods(["GET", "POST"])
@tenant_page
def instance_create(request: HttpRequest, page: TenantPage) -> HttpResponse:
    form = InstanceCreateForm(page.tenant, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        groups = list(data["security_groups"])
        try:
            instance, _operation = instance_services.instance_create(
                actor=page.actor,
                tenant=page.tenant,
                name=data["name"],
                flavor=data["flavor"],
                image=data["image"],
                keypair=data["keypair"],
                user_data=data["user_data"],
                nics=NicRequest(
                    networks=list(data["networks"]),
                    security_groups=tuple(groups) if groups else None,
                ),
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            messages.success(request, _("The instance %(name)s is being built.") % data)
            return redirect("portal:instance", tenant=page.tenant.slug, instance_id=instance.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/instances/create.html", {"form": form}, status=status)


@require_GET
@tenant_page
def instance_detail(request: HttpRequest, page: TenantPage, instance_id: UUID) -> HttpResponse:
    instance = _instance(page, instance_id)
    ports = network_selectors.port_list(page.tenant).filter(
        device_id=instance.pk, device_owner="compute:instance"
    )
    history = operation_selectors.operation_history(page.tenant, instance.pk)
    context = {
        "instance": instance,
        "busy": _busy(instance),
        "ports": list(ports.order_by("device_index")),
        "volumes": list(volume_selectors.instance_volumes(page.tenant, instance.pk)),
        "operations": with_step_timings(list(history.order_by("-created_at")[:20])),
        "reboot_form": RebootForm(),
        "snapshot_form": SnapshotForm(),
        "resize_form": ResizeForm(page.tenant),
        "rebuild_form": RebuildForm(page.tenant),
        "volume_form": VolumeAttachForm(page.tenant),
        "interface_form": InterfaceAttachForm(page.tenant),
    }
    return render(request, "portal/instances/detail.html", context)


@require_GET
@tenant_page
def instance_console(request: HttpRequest, page: TenantPage, instance_id: UUID) -> HttpResponse:
    """The serial console's tail as the host's worker last captured it; an old capture asks
    for a new one, which the page (polling) shows a few seconds later."""
    instance = _instance(page, instance_id)
    capture = selectors.instance_console(instance)
    console_services.console_request_refresh(instance, capture)
    return render(
        request,
        "portal/instances/console.html",
        {"instance": instance, "capture": capture, "age": capture.age_seconds()},
    )


def _verb(
    request: HttpRequest,
    page: TenantPage,
    instance_id: UUID,
    act: Callable[[Instance], Any],
    done: str,
) -> HttpResponse:
    instance = _instance(page, instance_id)
    try:
        act(instance)
    except DomainError as error:
        messages.error(request, message_for(error))
    else:
        messages.success(request, done)
    return redirect("portal:instance", tenant=page.tenant.slug, instance_id=instance.pk)


def _form_verb(
    request: HttpRequest,
    page: TenantPage,
    instance_id: UUID,
    form: Any,
    invalid: str,
    act: Callable[[Instance, dict[str, Any]], Any],
    done: str,
) -> HttpResponse:
    """A verb with a small form (a name, a flavor, a volume, a network): a foreign instance is
    a 404 before any form error; an invalid form says `invalid`; else `act(instance, data)`."""
    _instance(page, instance_id)
    if not form.is_valid():
        messages.error(request, invalid)
        return redirect("portal:instance", tenant=page.tenant.slug, instance_id=instance_id)
    return _verb(request, page, instance_id, lambda i: act(i, form.cleaned_data), done)


def _plain_verb(service: Callable[..., Any], done: Any) -> Callable[..., HttpResponse]:
    """The view of a verb that takes nothing but the instance (start, stop, confirm or revert a
    resize): POST only, through `service(actor=…, instance=…)`, `done` said on success."""

    @require_POST
    @tenant_page
    def view(request: HttpRequest, page: TenantPage, instance_id: UUID) -> HttpResponse:
        return _verb(
            request,
            page,
            instance_id,
            lambda i: service(actor=page.actor, instance=i),
            str(done),
        )

    return view


instance_start = _plain_verb(
    instance_services.instance_start, gettext_lazy("Starting the instance.")
)
instance_stop = _plain_verb(instance_services.instance_stop, gettext_lazy("Stopping the instance."))
instance_confirm_resize = _plain_verb(
    resize_services.instance_confirm_resize, gettext_lazy("The new flavor is kept.")
)
instance_revert_resize = _plain_verb(
    resize_services.instance_revert_resize, gettext_lazy("Going back to the previous flavor.")
)


@require_POST
@tenant_page
def instance_reboot(request: HttpRequest, page: TenantPage, instance_id: UUID) -> HttpResponse:
    form = RebootForm(request.POST)
    reboot_type = form.cleaned_data["type"] if form.is_valid() else "soft"
    return _verb(
        request,
        page,
        instance_id,
        lambda i: instance_services.instance_reboot(
            actor=page.actor, instance=i, reboot_type=reboot_type
        ),
        _("Rebooting the instance."),
    )


@require_POST
@tenant_page
def instance_snapshot(request: HttpRequest, page: TenantPage, instance_id: UUID) -> HttpResponse:
    return _form_verb(
        request, page, instance_id, SnapshotForm(request.POST), _("Give the snapshot a name."),
        lambda i, data: instance_services.instance_snapshot(
            actor=page.actor, instance=i, name=data["name"]
        ),
        _("Saving a snapshot as a new private image."),
    )  # fmt: skip


@require_POST
@tenant_page
def instance_resize(request: HttpRequest, page: TenantPage, instance_id: UUID) -> HttpResponse:
    return _form_verb(
        request, page, instance_id, ResizeForm(page.tenant, request.POST),
        _("Choose a flavor from the list."),
        lambda i, data: resize_services.instance_resize(
            actor=page.actor, instance=i, flavor=data["flavor"]
        ),
        _("Resizing the instance; confirm or revert when it is done."),
    )  # fmt: skip


@require_http_methods(["GET", "POST"])
@tenant_page
def instance_rebuild(request: HttpRequest, page: TenantPage, instance_id: UUID) -> HttpResponse:
    """Rebuild wipes the root disk: GET asks for confirmation (and the image), POST does it."""
    instance = _instance(page, instance_id)
    form = RebuildForm(page.tenant, request.POST or None)
    if request.method == "POST" and form.is_valid():
        return _verb(
            request,
            page,
            instance_id,
            lambda i: instance_services.instance_rebuild(
                actor=page.actor, instance=i, image=form.cleaned_data["image"]
            ),
            _("Rebuilding the instance from the image."),
        )
    return render(request, "portal/instances/rebuild.html", {"instance": instance, "form": form})


@require_http_methods(["GET", "POST"])
@tenant_page
def instance_delete(request: HttpRequest, page: TenantPage, instance_id: UUID) -> HttpResponse:
    """GET asks for confirmation; POST deletes (the root disk is erased)."""
    instance = _instance(page, instance_id)
    if request.method == "GET":
        return render(request, "portal/instances/delete.html", {"instance": instance})
    try:
        instance_services.instance_delete(actor=page.actor, instance=instance)
    except DomainError as error:
        messages.error(request, message_for(error))
        return redirect("portal:instance", tenant=page.tenant.slug, instance_id=instance.pk)
    messages.success(
        request, _("The instance %(name)s is being deleted.") % {"name": instance.name}
    )
    return redirect("portal:instances", tenant=page.tenant.slug)


@require_POST
@tenant_page
def instance_volume_attach(
    request: HttpRequest, page: TenantPage, instance_id: UUID
) -> HttpResponse:
    return _form_verb(
        request, page, instance_id, VolumeAttachForm(page.tenant, request.POST),
        _("Choose an available volume from the list."),
        lambda i, data: volume_services.instance_volume_attach(
            actor=page.actor, instance=i, volume=data["volume"]
        ),
        _("Attaching the volume."),
    )  # fmt: skip


@require_POST
@tenant_page
def instance_volume_detach(
    request: HttpRequest, page: TenantPage, instance_id: UUID, volume_id: UUID
) -> HttpResponse:
    _instance(page, instance_id)
    volume = get_object_or_404(volume_selectors.volume_list(page.tenant), pk=volume_id)
    return _verb(
        request,
        page,
        instance_id,
        lambda i: volume_services.instance_volume_detach(
            actor=page.actor, instance=i, volume=volume
        ),
        _("Detaching the volume."),
    )


@require_POST
@tenant_page
def instance_interface_attach(
    request: HttpRequest, page: TenantPage, instance_id: UUID
) -> HttpResponse:
    return _form_verb(
        request, page, instance_id, InterfaceAttachForm(page.tenant, request.POST),
        _("Choose a network from the list."),
        lambda i, data: interface_services.instance_interface_attach(
            actor=page.actor, instance=i, network=data["network"]
        ),
        _("Attaching a network interface."),
    )  # fmt: skip


@require_POST
@tenant_page
def instance_interface_detach(
    request: HttpRequest, page: TenantPage, instance_id: UUID, port_id: UUID
) -> HttpResponse:
    instance = _instance(page, instance_id)
    port = get_object_or_404(
        network_selectors.port_list(page.tenant).filter(device_id=instance.pk), pk=port_id
    )
    return _verb(
        request,
        page,
        instance_id,
        lambda i: interface_services.instance_interface_detach(
            actor=page.actor, instance=i, port=port
        ),
        _("Detaching the network interface."),
    )


_VERBS = [
    ("start", instance_start),
    ("stop", instance_stop),
    ("reboot", instance_reboot),
    ("snapshot", instance_snapshot),
    ("resize", instance_resize),
    ("confirm-resize", instance_confirm_resize),
    ("revert-resize", instance_revert_resize),
    ("rebuild", instance_rebuild),
    ("delete", instance_delete),
]

urlpatterns = [
    path("instances/", instance_list, name="instances"),
    path("instances/new/", instance_create, name="instance-create"),
    path("instances/<uuid:instance_id>/", instance_detail, name="instance"),
    path("instances/<uuid:instance_id>/console/", instance_console, name="instance-console"),
    *[
        path(f"instances/<uuid:instance_id>/{verb}/", view, name=f"instance-{verb}")
        for verb, view in _VERBS
    ],
    path("instances/<uuid:instance_id>/volumes/attach/", instance_volume_attach,
         name="instance-volume-attach"),
    path("instances/<uuid:instance_id>/volumes/<uuid:volume_id>/detach/",
         instance_volume_detach, name="instance-volume-detach"),
    path("instances/<uuid:instance_id>/interfaces/attach/", instance_interface_attach,
         name="instance-interface-attach"),
    path("instances/<uuid:instance_id>/interfaces/<uuid:port_id>/detach/",
         instance_interface_detach, name="instance-interface-detach"),
]  # fmt: skip
