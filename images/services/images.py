"""Images: creating one (metadata), uploading its file into the image store, deleting it.

An upload is not one transaction: the file may take minutes to arrive. The image is claimed
first (`queued` → `saving`, a conditional update, so two concurrent uploads cannot both win),
the file is streamed and inspected with no transaction open, and the outcome is written at
the end: `active`, `error` (the file was refused: the owner reads why) or back to `queued`
(the upload itself failed: too large, cut short, a server error; the owner may try again).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from iaas.audit import Actor, audit_record
from iaas.errors import (
    ConflictError,
    InvalidRequest,
    NotFoundError,
    PermissionDeniedError,
    TooLargeError,
)
from iaas.models import AuditEvent
from images import files as image_files
from images import usage
from images.models import Image
from tenants.models import Tenant
from tenants.quotas import quota_enforce

GIB = 1024**3
NAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 ._:+()@-]{0,126}[A-Za-z0-9._:+()@-])?$")


def image_file_path(image: Image) -> Path:
    """Where an active image's file lives in the image store."""
    return Path(settings.IMAGE_STORE_DIR) / str(image.id)


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            "An image name is 1 to 128 characters: letters, digits, spaces and . _ : + ( ) @ -, "
            "starting with a letter or digit and not ending with a space.",
            details={"name": name[:140]},
        )


@transaction.atomic
def image_create(
    *,
    actor: Actor,
    tenant: Tenant | None,
    name: str,
    disk_format: str,
    visibility: str | None = None,
    min_disk_gb: int = 0,
    min_ram_mb: int = 0,
    protected: bool = False,
    source_instance_id: uuid.UUID | None = None,
) -> Image:
    """Create an image with no file yet (`queued`). A tenant's image is private and counts
    against its `images` quota; a public image has no tenant (operators publish them). A
    snapshot's image (`source_instance_id` given) is born `saving`: its file comes from the
    instance's disk, never from an upload."""
    _check_name(name)
    if disk_format not in Image.DiskFormat.values:
        raise InvalidRequest(
            f"disk_format must be one of {', '.join(Image.DiskFormat.values)}.",
            details={"disk_format": disk_format},
        )
    if visibility is None:
        visibility = Image.Visibility.PRIVATE if tenant is not None else Image.Visibility.PUBLIC
    if tenant is not None and visibility == Image.Visibility.PUBLIC:
        raise PermissionDeniedError(
            "Only operators publish public images; a tenant's images are private.",
            code="public_image_forbidden",
        )
    if tenant is None and visibility != Image.Visibility.PUBLIC:
        raise InvalidRequest(
            "An image without a tenant is public: a private image belongs to a tenant.",
            code="private_image_needs_tenant",
        )
    if tenant is not None:
        quota_enforce(tenant, "images")
    image = Image.objects.create(
        tenant=tenant,
        name=name,
        disk_format=disk_format,
        visibility=visibility,
        min_disk_gb=min_disk_gb,
        min_ram_mb=min_ram_mb,
        protected=protected,
        created_by_id=actor.user_id,
        source_instance_id=source_instance_id,
        status=Image.Status.QUEUED if source_instance_id is None else Image.Status.SAVING,
    )
    audit_record(
        actor=actor,
        action="image.create",
        tenant_id=tenant.pk if tenant is not None else None,
        target=image,
        details={
            "disk_format": disk_format,
            "visibility": visibility,
            "source_instance": str(source_instance_id) if source_instance_id else None,
        },
    )
    return image


def _claim(image: Image) -> None:
    claimed = Image.objects.filter(pk=image.pk, status=Image.Status.QUEUED).update(
        status=Image.Status.SAVING, error_message="", updated_at=timezone.now()
    )
    if not claimed:
        current = Image.objects.filter(pk=image.pk).values_list("status", flat=True).first()
        if current is None or current == Image.Status.DELETED:
            raise NotFoundError("No such image.")
        raise ConflictError(
            f"The image is {current}: a file can only be uploaded to a queued image.",
            code="image_not_queued",
            details={"status": current},
        )


def _release(image: Image) -> None:
    """Back to `queued` after an upload that failed for reasons other than the file's content."""
    Image.objects.filter(pk=image.pk, status=Image.Status.SAVING).update(
        status=Image.Status.QUEUED, updated_at=timezone.now()
    )


def _refuse(actor: Actor, image: Image, message: str, *, action: str) -> InvalidRequest:
    with transaction.atomic():
        Image.objects.filter(pk=image.pk, status=Image.Status.SAVING).update(
            status=Image.Status.ERROR, error_message=message, updated_at=timezone.now()
        )
        audit_record(
            actor=actor,
            action=action,
            tenant_id=image.tenant_id,
            target=image,
            outcome=AuditEvent.Outcome.REFUSED,
            details={"reason": message[:500]},
        )
    error = InvalidRequest(message, code="image_refused", details={"status": Image.Status.ERROR})
    error.audited = True
    return error


def image_upload(
    *, actor: Actor, image: Image, stream: image_files.Readable, length: int | None
) -> Image:
    """Stream an image's file into the store (`length` bytes, or to the end of `stream` when
    None), inspect it and make the image `active`. Only a queued image takes a file."""
    limit = settings.IMAGE_MAX_BYTES
    if length is not None and length > limit:
        raise _too_large(limit)
    if length == 0:
        raise InvalidRequest("The upload is empty.", code="empty_upload")
    _claim(image)
    try:
        received = image_files.receive(
            stream,
            directory=Path(settings.IMAGE_STORE_DIR),
            prefix=f".{image.id}.",
            max_bytes=limit,
            length=length,
        )
    except image_files.TooLarge as exc:
        _release(image)
        raise _too_large(limit) from exc
    except image_files.Incomplete as exc:
        _release(image)
        raise InvalidRequest(
            f"The upload ended after {exc.received} of its {exc.declared} bytes; send it again.",
            code="incomplete_upload",
        ) from exc
    except BaseException:
        _release(image)
        raise
    if received.size == 0:
        received.path.unlink(missing_ok=True)
        _release(image)
        raise InvalidRequest("The upload is empty.", code="empty_upload")
    return _keep_file(actor, image, received, action="image.upload")


def _keep_file(
    actor: Actor,
    image: Image,
    received: image_files.Received,
    *,
    action: str,
    release_on_failure: bool = True,
) -> Image:
    """Inspect a received file, move it into the store and make the `saving` image active
    (audited as `action`). A refused file puts the image in `error` (its owner reads why).
    Any other failure removes the file and, with `release_on_failure`, puts the image back
    to `queued` (an upload may be tried again)."""
    final_path = image_file_path(image)
    try:
        try:
            inspection = image_files.inspect(
                received.path,
                image.disk_format,
                image_files.InspectionConfig.from_settings(settings),
            )
        except image_files.Refused as exc:
            received.path.unlink(missing_ok=True)
            raise _refuse(actor, image, exc.message, action=action) from exc
        received.path.replace(final_path)
        with transaction.atomic():
            saved = Image.objects.filter(pk=image.pk, status=Image.Status.SAVING).update(
                status=Image.Status.ACTIVE,
                size_bytes=received.size,
                virtual_size_bytes=inspection.virtual_size,
                # What the image really needs, whatever its owner declared: its virtual size.
                min_disk_gb=Greatest(F("min_disk_gb"), -(-inspection.virtual_size // GIB)),
                checksum_sha256=received.sha256,
                error_message="",
                updated_at=timezone.now(),
            )
            if not saved:  # only its producer moves an image out of `saving`; defence in depth
                raise ConflictError("The image changed while its file was saved.", code="conflict")
            audit_record(
                actor=actor,
                action=action,
                tenant_id=image.tenant_id,
                target=image,
                details={
                    "checksum_sha256": received.sha256,
                    "size_bytes": received.size,
                    "virtual_size_bytes": inspection.virtual_size,
                    "disk_format": image.disk_format,
                },
            )
    except BaseException as exc:
        received.path.unlink(missing_ok=True)
        if not getattr(exc, "audited", False):  # a refused file stays in `error`
            final_path.unlink(missing_ok=True)
            if release_on_failure:
                _release(image)
        raise
    image.refresh_from_db()
    return image


def image_save_snapshot(*, actor: Actor, image: Image, received: image_files.Received) -> Image:
    """Keep the file a snapshot produced (a flattened copy of an instance's root disk) as
    the `saving` snapshot image's file, through the same inspection as an upload. Already
    active (a step run again): the new file is dropped and the image returned as it is."""
    image.refresh_from_db()
    if image.status == Image.Status.ACTIVE:
        received.path.unlink(missing_ok=True)
        return image
    if image.status != Image.Status.SAVING:
        received.path.unlink(missing_ok=True)
        raise ConflictError(
            f"The snapshot image is {image.status}; it no longer takes a file.", code="conflict"
        )
    return _keep_file(
        actor, image, received, action="image.snapshot_saved", release_on_failure=False
    )


def image_snapshot_failed(*, actor: Actor, image_id: uuid.UUID | str, message: str) -> None:
    """The snapshot that was to fill this image failed: it goes to `error` with `message`
    (its owner deletes it; it holds no file). Only a `saving` image changes."""
    with transaction.atomic():
        image = Image.objects.select_for_update().filter(pk=image_id).first()
        if image is None or image.status != Image.Status.SAVING:
            return
        Image.objects.filter(pk=image.pk).update(
            status=Image.Status.ERROR, error_message=message[:2000], updated_at=timezone.now()
        )
        audit_record(
            actor=actor,
            action="image.snapshot_saved",
            tenant_id=image.tenant_id,
            target=image,
            outcome="failed",
            details={"reason": message[:500]},
        )
        path = image_file_path(image)  # defence in depth: a saving image has no file yet
        transaction.on_commit(lambda: path.unlink(missing_ok=True))


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(
        f"The image is larger than the limit of {limit} bytes.",
        code="image_too_large",
        details={"limit_bytes": limit},
    )


@transaction.atomic
def image_delete(*, actor: Actor, image: Image) -> None:
    """Delete an image: its row stays (status `deleted`, out of every list and quota), its
    file leaves the store once the deletion commits."""
    if image.protected:
        raise ConflictError("The image is protected and cannot be deleted.", code="image_protected")
    usage.refuse_if_in_use(image)
    deleted = (
        Image.objects.filter(pk=image.pk)
        .exclude(status__in=[Image.Status.SAVING, Image.Status.DELETED])
        .update(status=Image.Status.DELETED, updated_at=timezone.now())
    )
    if not deleted:
        current = Image.objects.filter(pk=image.pk).values_list("status", flat=True).first()
        if current == Image.Status.SAVING:
            raise ConflictError(
                "The image's file is being uploaded; delete it once the upload ends.",
                code="image_saving",
            )
        raise NotFoundError("No such image.")
    audit_record(
        actor=actor,
        action="image.delete",
        tenant_id=image.tenant_id,
        target=image,
        details={"checksum_sha256": image.checksum_sha256, "visibility": image.visibility},
    )
    path = image_file_path(image)
    transaction.on_commit(lambda: path.unlink(missing_ok=True))
