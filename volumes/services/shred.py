"""Crypto-shredding a tenant (DESIGN §8, issue 11 item 7): its volume keys are destroyed,
so its encrypted volumes can never be opened again, wherever their bytes are.

`tenant_shred` decides in one transaction, under the tenant's and its volumes' row locks (an
attach takes the volume's lock, so none can start meanwhile): refused while any volume is
attached or busy; else every tenant key's wrapped material is overwritten and the key marked
destroyed, every encrypted volume loses its wrapped data key and is marked shredded, and
the audit chain records `tenant.shred`; the shred is written to the shred ledger, outside the
database, before the commit (volumes.services.shred_ledger), so that a restore of an older
backup destroys the keys again (`shred_ledger_reapply`, the same `keys_destroy`). Then
`tenant_secrets_sweep` undefines, on every host, whatever secret of the tenant's volumes is
still defined (none should be: secrets live only while a volume is attached or being made; a
host reached late is swept by running it again).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from hypervisor.base import DriverError, Unsupported
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError
from tenants.models import Tenant
from volumes.crypto import secret_uuid
from volumes.models import TenantKey, Volume, VolumeAttachment
from volumes.services.shred_ledger import ledger_append, ledger_entries, ledger_file
from volumes.states import VolumeStatus

logger = logging.getLogger(__name__)

#: A volume in one of these may be open on a host, or about to be: no shred meanwhile.
BUSY_STATUSES = frozenset(
    {
        VolumeStatus.CREATING,
        VolumeStatus.ATTACHING,
        VolumeStatus.IN_USE,
        VolumeStatus.DETACHING,
        VolumeStatus.EXTENDING,
    }
)
SHREDDED_FAULT = (
    "This volume's encryption key was destroyed (its tenant's keys were shredded): its data "
    "can never be read again. It can only be deleted."
)


@dataclass
class ShredOutcome:
    key_versions: list[int] = field(default_factory=list)
    volume_ids: list[uuid.UUID] = field(default_factory=list)


@transaction.atomic
def tenant_shred(*, actor: Actor, tenant: Tenant) -> ShredOutcome:
    """Destroy `tenant`'s volume keys (409 `tenant_volumes_in_use`, nothing changed, while
    any of its volumes is attached, being attached or detached, created or extended).
    Running it again on a shredded tenant destroys nothing more and is audited again."""
    Tenant.objects.select_for_update().get(pk=tenant.pk)
    volumes = list(Volume.objects.select_for_update().filter(tenant=tenant).order_by("id"))
    attached = set(
        VolumeAttachment.objects.filter(
            volume__tenant=tenant, detached_at__isnull=True
        ).values_list("volume_id", flat=True)
    )
    busy = [v for v in volumes if v.status in BUSY_STATUSES or v.pk in attached]
    if busy:
        raise ConflictError(
            f"Tenant {tenant.slug} has {len(busy)} volume(s) attached or busy; detach them "
            "(and let running operations end) before shredding its keys.",
            code="tenant_volumes_in_use",
            details={"volumes": {str(v.pk): v.status for v in busy}},
        )
    now = timezone.now()
    live = list(TenantKey.objects.select_for_update().filter(tenant=tenant, destroyed_at=None))
    if live:
        # Before the commit, so a committed shred is never missing from the ledger.
        ledger_append(
            at=now, tenant_id=tenant.pk, tenant_slug=tenant.slug,
            keys=[(key.pk, key.version) for key in live],
        )  # fmt: skip
    outcome = keys_destroy(live, now)
    for volume in volumes:  # volumes left by an older shred (none expected): marked too
        if volume.tenant_key_id is None or volume.key_shredded_at is not None:
            continue
        if volume.pk in outcome.volume_ids:
            continue
        _volume_shred(volume.pk, now)
        outcome.volume_ids.append(volume.pk)
    audit_record(
        actor=actor,
        action="tenant.shred",
        tenant_id=tenant.pk,
        target=tenant,
        details={
            "key_versions_destroyed": outcome.key_versions,
            "volumes_shredded": [str(pk) for pk in outcome.volume_ids],
        },
    )
    return outcome


def keys_destroy(keys: list[TenantKey], now: datetime) -> ShredOutcome:
    """Destroy `keys` (rows locked by the caller, in its transaction): their wrapped material
    overwritten, `destroyed_at` set; every encrypted volume they protect loses its wrapped data
    key and is marked shredded. The one destroy path of `tenant_shred` and of a restore's
    `shred_ledger_reapply`."""
    outcome = ShredOutcome()
    for key in keys:
        key.wrapped_key = b""  # the only copy of the (wrapped) key material, overwritten
        key.destroyed_at = now
        key.save(update_fields=["wrapped_key", "destroyed_at"])
        outcome.key_versions.append(key.version)
    protected = Volume.objects.filter(tenant_key__in=keys, key_shredded_at=None).order_by("id")
    for pk in protected.values_list("pk", flat=True):
        _volume_shred(pk, now)
        outcome.volume_ids.append(pk)
    return outcome


def _volume_shred(pk: uuid.UUID, now: datetime) -> None:
    Volume.objects.filter(pk=pk).update(
        wrapped_key=None, key_shredded_at=now, fault=SHREDDED_FAULT, updated_at=now
    )


@transaction.atomic
def shred_ledger_reapply(*, actor: Actor) -> list[tuple[Tenant, ShredOutcome]]:
    """After a restore: destroy again, in one transaction, every key the shred ledger names
    that the restored database holds live (a key shredded after the backup was taken), by
    `keys_destroy`; one `tenant.shred_reapplied` event per tenant that had any. Keys the
    database does not know (made after the backup) or already destroyed are left as they are.
    ShredLedgerError, nothing changed, if the ledger cannot be read."""
    wanted = {key_id for entry in ledger_entries() for key_id in entry.key_ids}
    keys = TenantKey.objects.select_for_update().filter(pk__in=wanted, destroyed_at=None)
    by_tenant: dict[uuid.UUID, list[TenantKey]] = {}
    for key in keys.order_by("tenant_id", "version"):
        by_tenant.setdefault(key.tenant_id, []).append(key)
    now = timezone.now()
    done = []
    for tenant in Tenant.objects.select_for_update().filter(pk__in=by_tenant).order_by("pk"):
        outcome = keys_destroy(by_tenant[tenant.pk], now)
        audit_record(
            actor=actor,
            action="tenant.shred_reapplied",
            tenant_id=tenant.pk,
            target=tenant,
            details={
                "key_versions_destroyed": outcome.key_versions,
                "volumes_shredded": [str(pk) for pk in outcome.volume_ids],
                "ledger": str(ledger_file()),
            },
        )
        done.append((tenant, outcome))
    return done


@dataclass(frozen=True)
class HostSweep:
    host: str
    undefined: int = 0
    error: str = ""


def tenant_secrets_sweep(tenant: Tenant) -> list[HostSweep]:
    """On every onboarded host, undefine the secrets of the tenant's encrypted volumes that
    are still defined (each call bounded by the driver's timeout). One result per host; a
    host that could not be reached says why (run again once it is back)."""
    wanted = {
        secret_uuid(pk)
        for pk in Volume.objects.filter(tenant=tenant, tenant_key__isnull=False).values_list(
            "pk", flat=True
        )
    }
    results = []
    reachable = (Host.State.ENABLED, Host.State.DISABLED, Host.State.MAINTENANCE, Host.State.DOWN)
    for host in Host.objects.filter(state__in=reachable).order_by("name"):
        try:
            hv = hypervisor_for(host)
            try:
                defined = set(hv.list_secrets())
            except Unsupported:
                defined = set()  # libvirt's fake hypervisor: no secrets at all
            found = sorted(defined & wanted)
            for uuid_text in found:
                hv.undefine_secret(uuid_text)
        except DriverError as exc:
            logger.warning("shred of %s: host %s not swept: %s", tenant.slug, host.name, exc)
            results.append(HostSweep(host=host.name, error=str(exc)))
            continue
        results.append(HostSweep(host=host.name, undefined=len(found)))
    return results
