"""Images: creating one (metadata), uploading its file into the image store, deleting it.

An upload is not one transaction: the file may take minutes to arrive. The image is claimed
first (`queued` → `saving`, a conditional update, so two concurrent uploads cannot both win),
the file is streamed and inspected with no transaction open, and the outcome is written at
the end: `active`, `error` (the file was refused: the owner reads why) or back to `queued`
(the upload itself failed: too large, cut short, a server error; the owner may try again).

A `saving` upload holds a lease (`upload_expires_at`), renewed while bytes arrive. If the API
process dies mid-upload nothing would ever end it: `image_uploads_expire` (Celery beat) puts
an upload whose lease has passed back to `queued` and removes its partial file, and such an
image may be deleted at once.

The file goes to the image's store, in a zone its tenant's residency allows
(images.services.stores).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from hosts.models import Zone
from iaas.audit import Actor, audit_record
from iaas.errors import (
    ConflictError,
    InvalidRequest,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceeded,
    TooLargeError,
)
from iaas.models import AuditEvent
from images import files as image_files
from images import usage
from images.models import Image
from images.quota_usage import image_bytes_in_use
from images.services import stores
from tenants.models import Tenant
from tenants.quotas import UNLIMITED, limit_for, quota_enforce

logger = logging.getLogger(__name__)
GIB = 1024**3
NAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 ._:+()@-]{0,126}[A-Za-z0-9._:+()@-])?$")


def store_directory(image: Image) -> Path:
    """The directory of the image's store (images older than stores: the default one's)."""
    return image.store.directory if image.store is not None else Path(settings.IMAGE_STORE_DIR)


def image_file_path(image: Image) -> Path:
    """Where an active image's file lives in its image store."""
    return store_directory(image) / str(image.id)


def part_prefix(image: Image) -> str:
    """The name prefix of the image's partial files (an upload or a snapshot on the way)."""
    return f".{image.id}."


def _remove_partial_files(image: Image) -> int:
    removed = 0
    for part in store_directory(image).glob(f"{part_prefix(image)}*.part"):
        part.unlink(missing_ok=True)
        removed += 1
    return removed


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
    near: Zone | None = None,
) -> Image:
    """Create an image with no file yet (`queued`), in an image store its tenant's residency
    allows (one in zone `near` if possible; 409 `residency_unsatisfiable` if none). A
    tenant's image is private and counts against its `images` quota; a public image has no
    tenant (operators publish them). A snapshot's image (`source_instance_id` given) is born
    `saving`: its file comes from the instance's disk, never from an upload."""
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
    store = stores.store_choose(tenant, near=near)
    if tenant is not None:
        quota_enforce(tenant, "images")
    image = Image.objects.create(
        store=store,
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
            "store": store.name,
            "zone": store.zone.name,
            "jurisdiction": store.zone.jurisdiction,
        },
    )
    return image


def _lease_end() -> object:
    return timezone.now() + settings.IMAGE_UPLOAD_LEASE


def _claim(image: Image) -> None:
    claimed = Image.objects.filter(pk=image.pk, status=Image.Status.QUEUED).update(
        status=Image.Status.SAVING,
        error_message="",
        upload_expires_at=_lease_end(),
        updated_at=timezone.now(),
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
        status=Image.Status.QUEUED, upload_expires_at=None, updated_at=timezone.now()
    )


def _refuse(actor: Actor, image: Image, message: str, *, action: str) -> InvalidRequest:
    with transaction.atomic():
        Image.objects.filter(pk=image.pk, status=Image.Status.SAVING).update(
            status=Image.Status.ERROR,
            error_message=message,
            upload_expires_at=None,
            updated_at=timezone.now(),
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


class UploadExpired(ConflictError):
    code = "upload_expired"


class _LeasedStream:
    """The upload's body, renewing the image's upload lease as bytes arrive (at most every
    third of the lease). Its lease taken away (the upload was expired while the client
    stalled, or the image deleted): UploadExpired, and the upload stops."""

    def __init__(self, image: Image, stream: image_files.Readable) -> None:
        self._image = image
        self._stream = stream
        self._every = settings.IMAGE_UPLOAD_LEASE.total_seconds() / 3
        self._renewed = time.monotonic()

    def renew(self) -> None:
        renewed = Image.objects.filter(pk=self._image.pk, status=Image.Status.SAVING).update(
            upload_expires_at=_lease_end()
        )
        if not renewed:
            raise UploadExpired("The upload was abandoned (no data for too long); send it again.")
        self._renewed = time.monotonic()

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._stream.read(size)
        if time.monotonic() - self._renewed >= self._every:
            self.renew()
        return chunk


def image_upload(
    *, actor: Actor, image: Image, stream: image_files.Readable, length: int | None
) -> Image:
    """Stream an image's file into its store (`length` bytes, or to the end of `stream` when
    None), inspect it and make the image `active`. Only a queued image takes a file, and only
    into a store its tenant's residency allows now (409 `residency_unsatisfiable`, nothing
    written, the image stays queued)."""
    limit = settings.IMAGE_MAX_BYTES
    if length is not None and length > limit:
        raise _too_large(limit)
    if length == 0:
        raise InvalidRequest("The upload is empty.", code="empty_upload")
    # The `image_gb` quota: a declared length past it is refused before any byte is read,
    # and an undeclared one is cut off when it passes it (the check that counts is the one
    # made under the tenant's lock when the file is kept).
    quota = _image_quota(image)
    if quota is not None and length is not None and length > quota.room:
        raise quota.exceeded(length)
    if image.status == Image.Status.QUEUED:  # else _claim says why it takes no file
        stores.store_for_file(image)
    _claim(image)
    leased = _LeasedStream(image, stream)
    try:
        received = image_files.receive(
            leased,
            directory=store_directory(image),
            prefix=part_prefix(image),
            max_bytes=limit if quota is None else min(limit, quota.room),
            length=length,
        )
    except image_files.TooLarge as exc:
        _release(image)
        if quota is not None and quota.room < limit:
            raise quota.exceeded(quota.room + 1) from exc
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
    try:
        leased.renew()  # the inspection may take a while: a full lease for it
    except UploadExpired:
        received.path.unlink(missing_ok=True)
        raise
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
            # The check that counts: under the tenant's lock (the one at the upload's start
            # was a courtesy, parallel uploads pass it together).
            quota = _image_quota(image, lock=True)
            if quota is not None and received.size > quota.room:
                raise quota.exceeded(received.size)
            saved = Image.objects.filter(pk=image.pk, status=Image.Status.SAVING).update(
                status=Image.Status.ACTIVE,
                size_bytes=received.size,
                virtual_size_bytes=inspection.virtual_size,
                # What the image really needs, whatever its owner declared: its virtual size.
                min_disk_gb=Greatest(F("min_disk_gb"), -(-inspection.virtual_size // GIB)),
                checksum_sha256=received.sha256,
                error_message="",
                upload_expires_at=None,
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


def image_snapshot_failed(
    *, actor: Actor, image_id: uuid.UUID | str, message: str, code: str = ""
) -> None:
    """The snapshot that was to fill this image failed: it goes to `error` with `message`
    (its owner deletes it; it holds no file). Only a `saving` image changes. With a `code`
    (e.g. `residency_unsatisfiable`) the snapshot was refused, and is audited as such."""
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
            outcome=AuditEvent.Outcome.REFUSED if code else AuditEvent.Outcome.FAILED,
            details={"reason": message[:500], **({"code": code} if code else {})},
        )
        path = image_file_path(image)  # defence in depth: a saving image has no file yet

        def remove_files() -> None:
            path.unlink(missing_ok=True)
            _remove_partial_files(image)

        transaction.on_commit(remove_files)


def image_uploads_expire() -> list[str]:
    """Uploads whose lease has passed (their API process died, or their client stalled):
    each goes back to `queued` with a message saying the upload must be sent again, its
    partial file is removed, and an audit event records it. Returns their ids.

    `queued` rather than `error`: `error` says the file's content was refused, and nothing
    was refused here — the transfer broke, as when a client's connection drops (which also
    leaves the image queued). The owner uploads again, or deletes the image (its quota slot
    is free then)."""
    expired = []
    stale = Image.objects.filter(
        status=Image.Status.SAVING, upload_expires_at__lt=timezone.now()
    ).values_list("pk", flat=True)
    for image_id in list(stale):
        with transaction.atomic():
            image = (
                Image.objects.select_for_update(of=("self",))
                .select_related("store")
                .filter(
                    pk=image_id, status=Image.Status.SAVING, upload_expires_at__lt=timezone.now()
                )
                .first()
            )
            if image is None:
                continue  # renewed, finished or deleted meanwhile
            Image.objects.filter(pk=image.pk).update(
                status=Image.Status.QUEUED,
                upload_expires_at=None,
                error_message="The upload was interrupted before the whole file arrived; "
                "upload the file again.",
                updated_at=timezone.now(),
            )
            audit_record(
                actor=UPLOAD_REAPER,
                action="image.upload_expired",
                tenant_id=image.tenant_id,
                target=image,
                outcome=AuditEvent.Outcome.FAILED,
                details={"lease_expired_at": str(image.upload_expires_at)},
            )
        removed = _remove_partial_files(image)
        logger.info("upload of image %s expired; %d partial file(s) removed", image.pk, removed)
        expired.append(str(image.pk))
    return expired


UPLOAD_REAPER = Actor.system("upload-reaper")


@dataclass(frozen=True)
class _ImageQuota:
    """A tenant's `image_gb` limit (GiB) and the bytes its images already take."""

    limit_gib: int
    used_bytes: int

    @property
    def room(self) -> int:
        return max(self.limit_gib * GIB - self.used_bytes, 0)

    def exceeded(self, requested_bytes: int) -> QuotaExceeded:
        return QuotaExceeded(
            f"Quota exceeded for image_gb: {self.used_bytes} bytes stored, limit "
            f"{self.limit_gib} GiB, {requested_bytes} bytes more requested. Delete images or "
            "ask for a higher limit.",
            details={
                "resource": "image_gb",
                "limit": self.limit_gib,
                "usage_bytes": self.used_bytes,
                "requested_bytes": requested_bytes,
            },
        )


def _image_quota(image: Image, *, lock: bool = False) -> _ImageQuota | None:
    """The `image_gb` quota of the image's tenant; None when unlimited or for the platform's
    public images (no tenant: they count against nobody). With `lock`, the tenant row is
    locked until the transaction ends, so parallel uploads and snapshots of one tenant are
    counted one after the other."""
    if image.tenant_id is None:
        return None
    tenants = Tenant.objects.select_for_update() if lock else Tenant.objects
    tenant = tenants.get(pk=image.tenant_id)
    limit = limit_for(tenant, "image_gb")
    if limit == UNLIMITED:
        return None
    return _ImageQuota(limit_gib=limit, used_bytes=image_bytes_in_use(tenant))


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
    # A `saving` upload whose lease has passed has no writer any more: it may go.
    abandoned = Q(status=Image.Status.SAVING, upload_expires_at__lt=timezone.now())
    deleted = (
        Image.objects.filter(pk=image.pk)
        .filter(~Q(status__in=[Image.Status.SAVING, Image.Status.DELETED]) | abandoned)
        .update(status=Image.Status.DELETED, upload_expires_at=None, updated_at=timezone.now())
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

    def remove_files() -> None:
        path.unlink(missing_ok=True)
        _remove_partial_files(image)

    transaction.on_commit(remove_files)
