"""Exports: copies of a tenant's data for it to download (issue 11 item 9), kept in the
`exports/` folder of an image store in the data's own zone, erased on delete or expiry.

The API process never reaches a hypervisor (DESIGN §9): the app that owns the source (say
volumes) accepts the export in its request transaction (`export_begin`, which also counts
the tenant's live exports against settings.EXPORTS_PER_TENANT) and records an operation;
its worker streams the data into the store through `images.files.Receiver` (hashed on the
way) and hands the file over with `export_save`, or reports `export_failed`. The API process
reads the file back (GET /exports/{id}/file), as it reads uploaded images.

Erasure: the file is overwritten with zeros and synced before it is unlinked
(`images.files.erase_file`), by its owner (DELETE) or by `exports_expire` (Celery beat)
once `expires_at` has passed; the export keeps `erased_by`, and `export.erase` is audited.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hosts.models import Zone
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, NotFoundError, QuotaExceeded
from iaas.models import AuditEvent
from images import files as image_files
from images.models import Export, ImageStore
from images.services.stores import ResidencyUnsatisfiable, residency_of
from tenants.models import Tenant

logger = logging.getLogger(__name__)

#: Exports that hold (or are about to hold) a file: what EXPORTS_PER_TENANT bounds.
LIVE = (Export.Status.CREATING, Export.Status.AVAILABLE)
EXPORT_REAPER = Actor.system("export-reaper")
ERASED_BY_NOTHING = "no file to erase (the copy had not been kept)"


def export_directory(store: ImageStore) -> Path:
    return store.directory / "exports"


def export_file_path(export: Export) -> Path:
    """Where an available export's file lives."""
    return export_directory(export.store) / str(export.pk)


def part_prefix(export: Export) -> str:
    """The name prefix of the export's partial file while a worker writes it."""
    return f".{export.pk}."


def export_zone_check(tenant: Tenant, zone: Zone) -> None:
    """Refuse (ResidencyUnsatisfiable) to keep a copy of the tenant's data in `zone` when its
    residency policy no longer allows that zone's jurisdiction: checked when the export is
    asked for, and again by the worker before a byte leaves the host."""
    allowed = residency_of(tenant)
    if allowed is not None and zone.jurisdiction not in allowed:
        raise ResidencyUnsatisfiable(
            f"Your residency policy ({', '.join(allowed)}) no longer allows zone {zone.name} "
            f"({zone.jurisdiction}), where this data lies: no copy of it is made there.",
            details={"residency": list(allowed), "zone": zone.name},
        )


def _store_in(tenant: Tenant, zone: Zone) -> ImageStore:
    """An enabled store in `zone` (the data's own: an export never moves data to another
    zone), which the tenant's residency allows now."""
    export_zone_check(tenant, zone)
    store = (
        ImageStore.objects.select_related("zone")
        .filter(enabled=True, zone=zone)
        .order_by("name")
        .first()
    )
    if store is None:
        raise ConflictError(
            f"Zone {zone.name} has no image store to keep exports in; ask an operator.",
            code="no_export_store",
            details={"zone": zone.name},
        )
    return store


def export_begin(
    *, tenant: Tenant, source_kind: str, source_id: uuid.UUID, name: str, zone: Zone
) -> Export:
    """Record a new export (`creating`) of the tenant's data in `zone`, in the caller's
    transaction: 403 `quota_exceeded` when the tenant already has settings.EXPORTS_PER_TENANT
    live ones (counted under its row's lock, so parallel requests cannot pass it together),
    409 `residency_unsatisfiable` / `no_export_store` when no store of that zone may keep it.
    Its operation and audit event are the caller's."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("export_begin must run inside the request's transaction")
    store = _store_in(tenant, zone)
    Tenant.objects.select_for_update().only("pk").get(pk=tenant.pk)
    limit = int(settings.EXPORTS_PER_TENANT)
    live = Export.objects.filter(tenant=tenant, status__in=LIVE).count()
    if live + 1 > limit:
        raise QuotaExceeded(
            f"You have {live} exports; at most {limit} may be kept at once. Delete one "
            "(DELETE /api/v1/exports/{id}) or wait for one to expire.",
            details={"resource": "exports", "limit": limit, "usage": live, "requested": 1},
        )
    return Export.objects.create(
        tenant=tenant,
        source_kind=source_kind,
        source_id=source_id,
        name=name,
        store=store,
        expires_at=timezone.now() + timedelta(hours=settings.EXPORT_TTL_HOURS),
    )


def export_save(*, actor: Actor, export_id: uuid.UUID, received: image_files.Received) -> None:
    """Keep the file a worker streamed in (`received`, a partial file in the export's
    directory) as the `creating` export's file: it becomes `available` with its size and
    SHA-256, audited as `export.available`. Already available (a step run again): the new
    file is dropped. In any other status (deleted meanwhile, abandoned): the file is erased
    and ConflictError."""
    with transaction.atomic():
        export = Export.objects.select_for_update().select_related("store").get(pk=export_id)
        if export.status == Export.Status.AVAILABLE:
            image_files.erase_file(received.path)
            return
        if export.status != Export.Status.CREATING:
            image_files.erase_file(received.path)
            raise ConflictError(f"The export is {export.status}; it no longer takes a file.")
        received.path.replace(export_file_path(export))
        Export.objects.filter(pk=export.pk).update(
            status=Export.Status.AVAILABLE,
            size_bytes=received.size,
            checksum_sha256=received.sha256,
            fault="",
            updated_at=timezone.now(),
        )
        audit_record(
            actor=actor,
            action="export.available",
            tenant_id=export.tenant_id,
            target=export,
            details={
                "source_kind": export.source_kind,
                "source_id": str(export.source_id),
                "size_bytes": received.size,
                "checksum_sha256": received.sha256,
                "zone": export.store.zone.name,
            },
        )


def _erase_files(export: Export) -> bool:
    """Erase the export's file and any partial one a worker left; True if one was there."""
    whole = image_files.erase_file(export_file_path(export))
    return export_partials_erase(export) or whole


def export_partials_erase(export: Export) -> bool:
    """Erase what an interrupted earlier run left half-written (a step run again starts
    from nothing: a partial copy cannot be known complete); True if there was any."""
    erased = False
    for part in export_directory(export.store).glob(f"{part_prefix(export)}*.part"):
        erased = image_files.erase_file(part) or erased
    return erased


def export_failed(*, actor: Actor, export_id: uuid.UUID | str, message: str) -> None:
    """The copy that was to fill this export failed (or was abandoned): a `creating` export
    goes to `error` with `message`, any partial file erased; audited as failed."""
    if not export_id:
        return
    with transaction.atomic():
        export = (
            Export.objects.select_for_update().select_related("store").filter(pk=export_id).first()
        )
        if export is None or export.status != Export.Status.CREATING:
            return
        _erase_files(export)
        Export.objects.filter(pk=export.pk).update(
            status=Export.Status.ERROR, fault=message[:2000], updated_at=timezone.now()
        )
        audit_record(
            actor=actor,
            action="export.create",
            tenant_id=export.tenant_id,
            target=export,
            outcome=AuditEvent.Outcome.FAILED,
            details={"reason": message[:500]},
        )


def _erase(actor: Actor, export: Export, *, why: str) -> None:
    """In the caller's transaction, the export's row locked: erase its file, mark it
    `deleted` with how, audit `export.erase`."""
    erased_by = image_files.ERASED_BY_OVERWRITE if _erase_files(export) else ERASED_BY_NOTHING
    Export.objects.filter(pk=export.pk).update(
        status=Export.Status.DELETED, erased_by=erased_by, updated_at=timezone.now()
    )
    audit_record(
        actor=actor,
        action="export.erase",
        tenant_id=export.tenant_id,
        target=export,
        details={"erased_by": erased_by, "why": why},
    )
    export.status, export.erased_by = Export.Status.DELETED, erased_by


@transaction.atomic
def export_delete(*, actor: Actor, export: Export) -> Export:
    """Erase an `available` or `error` export now (its file overwritten, then unlinked): it
    ends `deleted` with `erased_by`. One being made: 409 `wrong_state` (its worker is
    writing; delete it once it ends)."""
    locked = Export.objects.select_for_update().select_related("store").filter(pk=export.pk).first()
    if locked is None or locked.status == Export.Status.DELETED:
        raise NotFoundError("No such export.")
    if locked.status == Export.Status.CREATING:
        raise ConflictError(
            "The export is being made; it can be deleted once it is available or in error.",
            code="wrong_state",
            details={"status": locked.status},
        )
    _erase(actor, locked, why="deleted by its owner")
    return locked


def exports_expire() -> list[str]:
    """Erase every export past its `expires_at` that is `available` or `error` (one still
    `creating` is left to its operation, which ends it, and is erased on a later pass).
    Returns their ids."""
    now = timezone.now()
    due = Export.objects.filter(
        status__in=(Export.Status.AVAILABLE, Export.Status.ERROR), expires_at__lt=now
    ).values_list("pk", flat=True)
    expired = []
    for export_id in list(due[:500]):
        with transaction.atomic():
            export = (
                Export.objects.select_for_update()
                .select_related("store")
                .filter(
                    pk=export_id,
                    status__in=(Export.Status.AVAILABLE, Export.Status.ERROR),
                    expires_at__lt=now,
                )
                .first()
            )
            if export is None:
                continue  # deleted meanwhile
            _erase(EXPORT_REAPER, export, why="expired")
        logger.info("export %s expired and was erased", export_id)
        expired.append(str(export_id))
    return expired
