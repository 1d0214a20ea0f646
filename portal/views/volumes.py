"""The volumes pages: a tenant's volumes and volume snapshots, their creation, extension,
snapshots, exports (with the download of the copy) and deletion — through the services the
API calls, references resolved through the same tenant-scoped selectors (a foreign volume,
snapshot or export is a 404). Attaching and detaching are the instance page's."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compute import selectors as compute_selectors
from iaas.errors import ConflictError, DomainError, InvalidRequest
from images import selectors as image_selectors
from images.api.downloads import file_download
from images.models import Export, Image
from images.services.exports import export_file_path
from operations import selectors as operation_selectors
from portal.errors import message_for
from portal.forms.storage import VolumeCreateForm, VolumeExtendForm, VolumeSnapshotCreateForm
from portal.tenancy import TenantPage, tenant_page
from volumes import selectors
from volumes.models import Volume, VolumeSnapshot
from volumes.services import exports as export_services
from volumes.services import snapshots as snapshot_services
from volumes.services import volumes as volume_services
from volumes.states import VolumeSnapshotStatus

# Statuses a worker will move on from: their pages refresh themselves (htmx) until it has.
BUSY = {"creating", "attaching", "detaching", "extending", "exporting", "deleting"}


def _volume(page: TenantPage, volume_id: uuid.UUID) -> Volume:
    return get_object_or_404(selectors.volume_list(page.tenant), pk=volume_id)


def _snapshot(page: TenantPage, snapshot_id: uuid.UUID) -> VolumeSnapshot:
    return get_object_or_404(selectors.volume_snapshot_list(page.tenant), pk=snapshot_id)


def _instance_names(page: TenantPage, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    found = compute_selectors.instance_list(page.tenant).filter(pk__in=ids)
    return dict(found.values_list("pk", "name"))


def _attachment(volume: Volume) -> Any:
    active = getattr(volume, "active_attachments", None) or []
    return active[0] if active else None


def _refused(request: HttpRequest, error: DomainError, volume: Volume | None = None) -> None:
    """The refusal in the user's words; a volume still attached is said as such (the
    service's `wrong_state` would only say "not in this state")."""
    if volume is not None and error.code == "wrong_state" and _attachment(volume) is not None:
        error = ConflictError(error.message, code="volume_in_use")
    messages.error(request, message_for(error))


# ---- volumes -----------------------------------------------------------------------------------


@require_GET
@tenant_page
def volume_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    volumes = list(selectors.volume_list(page.tenant).order_by("name", "created_at"))
    attachments = {v.pk: _attachment(v) for v in volumes}
    names = _instance_names(page, {a.instance_id for a in attachments.values() if a})
    rows = []
    for volume in volumes:
        attachment = attachments[volume.pk]
        rows.append(
            {
                "volume": volume,
                "attachment": attachment,
                "instance_name": names.get(attachment.instance_id) if attachment else None,
            }
        )
    busy = any(v.status in BUSY for v in volumes)
    return render(request, "portal/volumes/list.html", {"rows": rows, "busy": busy})


def _create_form(page: TenantPage, data: Any = None, initial: Any = None) -> VolumeCreateForm:
    types = selectors.volume_type_list(page.tenant).order_by("name")
    images = image_selectors.image_list(page.tenant).filter(status=Image.Status.ACTIVE)
    snapshots = selectors.volume_snapshot_list(page.tenant).filter(
        status=VolumeSnapshotStatus.AVAILABLE
    )
    return VolumeCreateForm(
        data,
        initial=initial,
        volume_types=[
            (str(t.pk), f"{t.name} ({_('encrypted')})" if t.encrypted else t.name) for t in types
        ],
        images=[(str(i.pk), i.name) for i in images.order_by("name")],
        snapshots=[(str(s.pk), f"{s.name} ({s.size_gb} GiB)") for s in snapshots.order_by("name")],
    )


def _initial(page: TenantPage, request: HttpRequest) -> dict[str, Any]:
    """The form's first values: the default type, and a source named in the query (the
    "create a volume from it" links of a snapshot or an image), sized to fit it."""
    initial: dict[str, Any] = {}
    default = selectors.volume_type_find(page.tenant, settings.VOLUME_DEFAULT_TYPE)
    if default is not None:
        initial["volume_type"] = str(default.pk)
    snapshot = selectors.volume_snapshot_find(page.tenant, request.GET.get("snapshot", ""))
    if snapshot is not None:
        initial.update(snapshot=str(snapshot.pk), size_gb=snapshot.size_gb)
    ref = request.GET.get("image", "")
    try:
        image = image_selectors.image_find(page.tenant, uuid.UUID(ref)) if ref else None
    except ValueError:
        image = None
    if image is not None:
        initial.update(image=str(image.pk), size_gb=max(1, image.min_disk_gb))
    return initial


@require_http_methods(["GET", "POST"])
@tenant_page
def volume_create(request: HttpRequest, page: TenantPage) -> HttpResponse:
    if request.method == "GET":
        form = _create_form(page, initial=_initial(page, request))
        return render(request, "portal/volumes/create.html", {"form": form})
    form = _create_form(page, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        tenant = page.tenant
        try:
            volume_type = selectors.volume_type_find(tenant, data["volume_type"])
            if volume_type is None:
                raise InvalidRequest("No such volume type.", code="unknown_volume_type")
            image = None
            if data["image"]:
                image = image_selectors.image_find(tenant, data["image"])
                if image is None:
                    raise InvalidRequest("No such image.", code="unknown_image")
            snapshot = None
            if data["snapshot"]:
                snapshot = selectors.volume_snapshot_find(tenant, data["snapshot"])
                if snapshot is None:
                    raise InvalidRequest("No such volume snapshot.", code="unknown_snapshot")
            volume, _operation = volume_services.volume_create(
                actor=page.actor,
                tenant=tenant,
                name=data["name"],
                description=data["description"],
                size_gb=data["size_gb"],
                volume_type=volume_type,
                image=image,
                snapshot=snapshot,
            )
        except DomainError as error:
            form.add_error(None, message_for(error))
        else:
            messages.success(
                request, _("The volume %(name)s is being created.") % {"name": volume.name}
            )
            return redirect("portal:volume", tenant=tenant.slug, volume_id=volume.pk)
    return render(request, "portal/volumes/create.html", {"form": form}, status=400)


def _volume_context(page: TenantPage, volume: Volume) -> dict[str, Any]:
    attachment = _attachment(volume)
    instance_name = None
    if attachment is not None:
        instance_name = _instance_names(page, {attachment.instance_id}).get(attachment.instance_id)
    source_snapshot = None
    if volume.source_snapshot_id is not None:
        source_snapshot = selectors.volume_snapshot_find(
            page.tenant, str(volume.source_snapshot_id)
        )
    exports = list(
        image_selectors.export_list(page.tenant).filter(
            source_kind=Export.SourceKind.VOLUME, source_id=volume.pk
        )
    )
    snapshots = list(
        selectors.volume_snapshot_list(page.tenant).filter(volume=volume).order_by("-created_at")
    )
    busy = (
        volume.status in BUSY
        or any(e.status == Export.Status.CREATING for e in exports)
        or any(s.status in BUSY for s in snapshots)
    )
    return {
        "volume": volume,
        "attachment": attachment,
        "instance_name": instance_name,
        "source_image": image_selectors.image_of_volume(volume.source_image_id),
        "source_snapshot": source_snapshot,
        "snapshots": snapshots,
        "exports": exports,
        "operations": list(
            operation_selectors.operation_history(page.tenant, volume.pk).order_by("-created_at")
        ),
        "busy": busy,
        "extend_form": VolumeExtendForm(initial={"size_gb": volume.size_gb + 1}),
        "snapshot_form": VolumeSnapshotCreateForm(),
    }


@require_GET
@tenant_page
def volume_detail(request: HttpRequest, page: TenantPage, volume_id: uuid.UUID) -> HttpResponse:
    volume = _volume(page, volume_id)
    return render(request, "portal/volumes/detail.html", _volume_context(page, volume))


def _back(page: TenantPage, volume: Volume) -> HttpResponse:
    return redirect("portal:volume", tenant=page.tenant.slug, volume_id=volume.pk)


@require_POST
@tenant_page
def volume_extend(request: HttpRequest, page: TenantPage, volume_id: uuid.UUID) -> HttpResponse:
    volume = _volume(page, volume_id)
    form = VolumeExtendForm(request.POST)
    if form.is_valid():
        try:
            volume_services.volume_extend(
                actor=page.actor, volume=volume, size_gb=form.cleaned_data["size_gb"]
            )
        except DomainError as error:
            _refused(request, error, volume)
            return _back(page, volume)
        messages.success(request, _("The volume is being extended."))
        return _back(page, volume)
    context = _volume_context(page, volume)
    context["extend_form"] = form
    return render(request, "portal/volumes/detail.html", context, status=400)


@require_POST
@tenant_page
def volume_snapshot_create(
    request: HttpRequest, page: TenantPage, volume_id: uuid.UUID
) -> HttpResponse:
    volume = _volume(page, volume_id)
    form = VolumeSnapshotCreateForm(request.POST)
    if form.is_valid():
        try:
            snapshot, _operation = snapshot_services.volume_snapshot_create(
                actor=page.actor,
                volume=volume,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
        except DomainError as error:
            _refused(request, error)
            return _back(page, volume)
        messages.success(
            request, _("The snapshot %(name)s is being taken.") % {"name": snapshot.name}
        )
        return _back(page, volume)
    context = _volume_context(page, volume)
    context["snapshot_form"] = form
    return render(request, "portal/volumes/detail.html", context, status=400)


@require_POST
@tenant_page
def volume_export(request: HttpRequest, page: TenantPage, volume_id: uuid.UUID) -> HttpResponse:
    volume = _volume(page, volume_id)
    try:
        export_services.volume_export(actor=page.actor, volume=volume)
    except DomainError as error:
        _refused(request, error, volume)
    else:
        messages.success(
            request, _("The copy is being made; its download link appears below when it is ready.")
        )
    return _back(page, volume)


@require_http_methods(["GET", "POST"])
@tenant_page
def volume_delete(request: HttpRequest, page: TenantPage, volume_id: uuid.UUID) -> HttpResponse:
    volume = _volume(page, volume_id)
    if request.method == "POST":
        try:
            volume_services.volume_delete(actor=page.actor, volume=volume)
        except DomainError as error:
            _refused(request, error, volume)
            return _back(page, volume)
        messages.success(
            request, _("The volume %(name)s is being deleted.") % {"name": volume.name}
        )
        return redirect("portal:volumes", tenant=page.tenant.slug)
    context = {
        "volume": volume,
        "attachment": _attachment(volume),
        "snapshot_count": selectors.volume_snapshot_list(page.tenant).filter(volume=volume).count(),
    }
    return render(request, "portal/volumes/delete.html", context)


# ---- volume snapshots --------------------------------------------------------------------------


@require_GET
@tenant_page
def snapshot_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    snapshots = list(
        selectors.volume_snapshot_list(page.tenant).select_related("volume").order_by("-created_at")
    )
    busy = any(s.status in BUSY for s in snapshots)
    return render(
        request, "portal/volumes/snapshot_list.html", {"snapshots": snapshots, "busy": busy}
    )


def _snapshot_context(page: TenantPage, snapshot: VolumeSnapshot) -> dict[str, Any]:
    exports = image_selectors.export_list(page.tenant).filter(
        source_kind=Export.SourceKind.VOLUME_SNAPSHOT, source_id=snapshot.pk
    )
    return {
        "snapshot": snapshot,
        "volume": selectors.volume_find(page.tenant, str(snapshot.volume_id)),
        "exports": list(exports),
        "volumes_made": list(
            selectors.volume_list(page.tenant).filter(source_snapshot=snapshot).order_by("name")
        ),
        "operations": list(
            operation_selectors.operation_history(page.tenant, snapshot.pk).order_by("-created_at")
        ),
        "busy": snapshot.status in BUSY or any(e.status == "creating" for e in exports),
    }


@require_GET
@tenant_page
def snapshot_detail(request: HttpRequest, page: TenantPage, snapshot_id: uuid.UUID) -> HttpResponse:
    snapshot = _snapshot(page, snapshot_id)
    return render(request, "portal/volumes/snapshot_detail.html", _snapshot_context(page, snapshot))


@require_POST
@tenant_page
def snapshot_export(request: HttpRequest, page: TenantPage, snapshot_id: uuid.UUID) -> HttpResponse:
    snapshot = _snapshot(page, snapshot_id)
    try:
        export_services.volume_snapshot_export(actor=page.actor, snapshot=snapshot)
    except DomainError as error:
        _refused(request, error)
    else:
        messages.success(
            request, _("The copy is being made; its download link appears below when it is ready.")
        )
    return redirect("portal:volume-snapshot", tenant=page.tenant.slug, snapshot_id=snapshot.pk)


@require_http_methods(["GET", "POST"])
@tenant_page
def snapshot_delete(request: HttpRequest, page: TenantPage, snapshot_id: uuid.UUID) -> HttpResponse:
    snapshot = _snapshot(page, snapshot_id)
    if request.method == "POST":
        try:
            snapshot_services.volume_snapshot_delete(actor=page.actor, snapshot=snapshot)
        except DomainError as error:
            _refused(request, error)
            return redirect(
                "portal:volume-snapshot", tenant=page.tenant.slug, snapshot_id=snapshot.pk
            )
        messages.success(
            request, _("The snapshot %(name)s is being deleted.") % {"name": snapshot.name}
        )
        return redirect("portal:volume-snapshots", tenant=page.tenant.slug)
    return render(
        request,
        "portal/volumes/snapshot_delete.html",
        {
            "snapshot": snapshot,
            "volume": selectors.volume_find(page.tenant, str(snapshot.volume_id)),
        },
    )


# ---- exports -----------------------------------------------------------------------------------


@require_GET
@tenant_page
def export_download(request: HttpRequest, page: TenantPage, export_id: uuid.UUID) -> HttpResponse:
    """An available export's file, as the API's GET /exports/{id}/file streams it (with its
    SHA-256 in the headers): a plain link of the page cannot send the API's X-Tenant."""
    export = get_object_or_404(image_selectors.export_list(page.tenant), pk=export_id)
    try:
        if export.status != Export.Status.AVAILABLE:
            raise ConflictError("Not available.", code="export_not_available")
        # A streamed FileResponse (tenancy.View names HttpResponse, its usual kind).
        return cast(
            HttpResponse,
            file_download(
                export_file_path(export), filename=export.name, sha256_hex=export.checksum_sha256
            ),
        )
    except DomainError as error:
        messages.error(request, message_for(error))
    if export.source_kind == Export.SourceKind.VOLUME_SNAPSHOT:
        return redirect(
            "portal:volume-snapshot", tenant=page.tenant.slug, snapshot_id=export.source_id
        )
    if selectors.volume_find(page.tenant, str(export.source_id)) is not None:
        return redirect("portal:volume", tenant=page.tenant.slug, volume_id=export.source_id)
    return redirect("portal:volumes", tenant=page.tenant.slug)


urlpatterns = [
    path("volumes/", volume_list, name="volumes"),
    path("volumes/create/", volume_create, name="volume-create"),
    path("volumes/<uuid:volume_id>/", volume_detail, name="volume"),
    path("volumes/<uuid:volume_id>/extend/", volume_extend, name="volume-extend"),
    path(
        "volumes/<uuid:volume_id>/snapshot/", volume_snapshot_create, name="volume-snapshot-create"
    ),
    path("volumes/<uuid:volume_id>/export/", volume_export, name="volume-export"),
    path("volumes/<uuid:volume_id>/delete/", volume_delete, name="volume-delete"),
    path("volume-snapshots/", snapshot_list, name="volume-snapshots"),
    path("volume-snapshots/<uuid:snapshot_id>/", snapshot_detail, name="volume-snapshot"),
    path(
        "volume-snapshots/<uuid:snapshot_id>/export/",
        snapshot_export,
        name="volume-snapshot-export",
    ),
    path(
        "volume-snapshots/<uuid:snapshot_id>/delete/",
        snapshot_delete,
        name="volume-snapshot-delete",
    ),
    path("exports/<uuid:export_id>/file/", export_download, name="export-download"),
]
