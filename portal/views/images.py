"""The images pages: the images a tenant may boot (its own and the public ones), the
snapshots taken of its instances, an image's detail, its deletion, and the upload.

The upload is two steps, as in the API: the form creates the image record through the
service (`image_create`), then portal/static/portal/upload.js streams the file to the API's
`PUT /api/v1/images/{id}/file` with this session (MfaSessionAuthentication: the session
cookie, the CSRF token in `X-CSRFToken`, the tenant in `X-Tenant`), showing its progress,
and asks `image-upload-status` for the outcome in the user's language. Without JavaScript
the form still creates the record (a browser posts only a file's name in a urlencoded
form, so nothing large reaches the portal, whose body limit is 1 MiB) and the pages say
that the file's upload needs JavaScript, or the API, with the command to use.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from compute import selectors as compute_selectors
from iaas.errors import DomainError
from images import selectors
from images.api.downloads import file_download
from images.models import Image
from images.services import images as image_services
from images.services.images import image_file_path
from portal.errors import known_codes, message_for
from portal.forms.storage import ImageCreateForm
from portal.tenancy import TenantPage, tenant_page


def _image(page: TenantPage, image_id: uuid.UUID) -> Image:
    return get_object_or_404(selectors.image_list(page.tenant), pk=image_id)


def _owned(page: TenantPage, image: Image) -> bool:
    """Whether the tenant owns the image (public images are the operators')."""
    return image.tenant_id == page.tenant.pk


def _instance_names(page: TenantPage, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    found = compute_selectors.instance_list(page.tenant).filter(pk__in=ids)
    return dict(found.values_list("pk", "name"))


def _with_sources(page: TenantPage, images: QuerySet[Image]) -> list[dict[str, Any]]:
    rows = list(images)
    names = _instance_names(page, {i.source_instance_id for i in rows if i.source_instance_id})
    return [
        {
            "image": image,
            "owned": _owned(page, image),
            "source": names.get(image.source_instance_id) if image.source_instance_id else None,
        }
        for image in rows
    ]


@require_GET
@tenant_page
def image_list(request: HttpRequest, page: TenantPage) -> HttpResponse:
    visible = selectors.image_list(page.tenant).order_by("name", "created_at")
    context = {
        "images": _with_sources(page, visible.filter(source_instance_id__isnull=True)),
        "snapshots": _with_sources(page, visible.filter(source_instance_id__isnull=False)),
    }
    return render(request, "portal/images/list.html", context)


def _upload_urls(page: TenantPage, image: Image) -> dict[str, str]:
    slug = page.tenant.slug
    return {
        "upload_url": f"/api/v1/images/{image.pk}/file",
        "status_url": reverse(
            "portal:image-upload-status", kwargs={"tenant": slug, "image_id": image.pk}
        ),
        "image_url": reverse("portal:image", kwargs={"tenant": slug, "image_id": image.pk}),
    }


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@require_http_methods(["GET", "POST"])
@tenant_page
def image_upload(request: HttpRequest, page: TenantPage) -> HttpResponse:
    """GET: the form. POST: creates the record; upload.js asks for JSON (the URLs to send
    the file to and to read the outcome from), a browser without JavaScript is sent to the
    image's page."""
    form = ImageCreateForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                image = image_services.image_create(
                    actor=page.actor,
                    tenant=page.tenant,
                    name=form.cleaned_data["name"],
                    disk_format=form.cleaned_data["disk_format"],
                )
            except DomainError as error:
                form.add_error(None, message_for(error))
            else:
                if _wants_json(request):
                    return JsonResponse({"id": str(image.pk), **_upload_urls(page, image)})
                messages.success(request, _("The image was created; it waits for its file."))
                return redirect("portal:image", tenant=page.tenant.slug, image_id=image.pk)
        if _wants_json(request):
            errors = [str(e) for e in form.non_field_errors()] + [
                f"{form.fields[name].label}: {error}"
                for name, field_errors in form.errors.items()
                if name != "__all__"
                for error in field_errors
            ]
            return JsonResponse({"errors": errors}, status=400)
    return render(request, "portal/images/upload.html", {"form": form}, status=200)


@require_GET
@tenant_page
def image_detail(request: HttpRequest, page: TenantPage, image_id: uuid.UUID) -> HttpResponse:
    image = _image(page, image_id)
    users = compute_selectors.instance_list(page.tenant).filter(image_id=image.pk)
    source = None
    if image.source_instance_id is not None:
        source = _instance_names(page, {image.source_instance_id}).get(image.source_instance_id)
    context = {
        "image": image,
        "owned": _owned(page, image),
        "source": source,
        "instances": list(users.order_by("name")),
        **_upload_urls(page, image),
    }
    return render(request, "portal/images/detail.html", context)


@require_GET
@tenant_page
def image_upload_status(
    request: HttpRequest, page: TenantPage, image_id: uuid.UUID
) -> HttpResponse:
    """The outcome of an upload, as a fragment upload.js puts in the page: the image's
    status, size and SHA-256 (the server's, from the image record), or why it failed (the
    API's error code, said in the user's language)."""
    image = _image(page, image_id)
    code = request.GET.get("error", "")
    failure = None
    if code:
        failure = (
            message_for(DomainError("", code=code))
            if code in known_codes()
            else _("The upload failed (%(code)s). Try again.") % {"code": code[:40]}
        )
    context = {"image": image, "failure": failure, **_upload_urls(page, image)}
    return render(request, "portal/images/upload_status.html", context)


@require_http_methods(["GET", "POST"])
@tenant_page
def image_delete(request: HttpRequest, page: TenantPage, image_id: uuid.UUID) -> HttpResponse:
    image = _image(page, image_id)
    if request.method == "POST":
        if not _owned(page, image):
            messages.error(request, _("Public images are managed by the operators."))
            return redirect("portal:image", tenant=page.tenant.slug, image_id=image.pk)
        try:
            image_services.image_delete(actor=page.actor, image=image)
        except DomainError as error:
            messages.error(request, message_for(error))
            return redirect("portal:image", tenant=page.tenant.slug, image_id=image.pk)
        messages.success(request, _("The image %(name)s was deleted.") % {"name": image.name})
        return redirect("portal:images", tenant=page.tenant.slug)
    return render(
        request, "portal/images/delete.html", {"image": image, "owned": _owned(page, image)}
    )


@require_GET
@tenant_page
def image_download(request: HttpRequest, page: TenantPage, image_id: uuid.UUID) -> HttpResponse:
    """The active image's file, as the API's GET /images/{id}/file streams it (with its
    SHA-256 in the headers): a plain link of the page cannot send the API's X-Tenant."""
    image = _image(page, image_id)
    try:
        if image.status != Image.Status.ACTIVE:
            raise DomainError("not active", code="image_not_active")
        # A streamed FileResponse (tenancy.View names HttpResponse, its usual kind).
        return cast(
            HttpResponse,
            file_download(
                image_file_path(image),
                filename=f"{image.name}.{image.disk_format}",
                sha256_hex=image.checksum_sha256,
            ),
        )
    except DomainError as error:
        messages.error(request, message_for(error))
        return redirect("portal:image", tenant=page.tenant.slug, image_id=image.pk)


urlpatterns = [
    path("images/", image_list, name="images"),
    path("images/upload/", image_upload, name="image-upload"),
    path("images/<uuid:image_id>/", image_detail, name="image"),
    path("images/<uuid:image_id>/upload-status/", image_upload_status, name="image-upload-status"),
    path("images/<uuid:image_id>/delete/", image_delete, name="image-delete"),
    path("images/<uuid:image_id>/file/", image_download, name="image-download"),
]
