"""Rotating the volume master key (DESIGN §8): every live tenant key is re-wrapped by a new
master key; tenant keys and volumes' data keys stay as they are, so no volume is touched and
nothing reaches a host. `manage.py volume_master_key_rotate` drives it."""

from __future__ import annotations

from django.db import connection, transaction

from iaas.audit import Actor, audit_record
from volumes.crypto import key_id, tenant_key_rewrap
from volumes.models import TenantKey


@transaction.atomic
def master_key_rotate(*, actor: Actor, old: bytes, new: bytes) -> int:
    """Re-wrap every live tenant key from the master key `old` to `new`, in one transaction
    with the tenant keys' table locked against new keys (a key made meanwhile would be
    wrapped by `old`). Keys wrapped by `new` already are left (a rotation run again finishes
    an interrupted one). Audited as `volume_master_key.rotate` when it changed any; returns
    how many it changed. VolumeKeyError when a key is wrapped by neither: nothing changes."""
    table = connection.ops.quote_name(TenantKey._meta.db_table)
    with connection.cursor() as cursor:
        # SHARE ROW EXCLUSIVE: readers go on, writers (a new tenant key, a shred) wait.
        cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
    changed = []
    for tenant_key in TenantKey.objects.filter(destroyed_at__isnull=True).order_by("pk"):
        if tenant_key_rewrap(tenant_key, old, new):
            changed.append(tenant_key)
    TenantKey.objects.bulk_update(changed, ["wrapped_key", "master_key_id"])
    if changed:
        audit_record(
            actor=actor,
            action="volume_master_key.rotate",
            target_type="volume_master_key",
            target_id=key_id(new),
            details={"from": key_id(old), "to": key_id(new), "tenant_keys": len(changed)},
        )
    return len(changed)
