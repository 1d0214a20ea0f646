"""Refused reads, counted and audited in aggregate (review L5).

A GET on another tenant's id (404) or above one's role (403) changes nothing, but a caller
probing ids is worth knowing about. One audit event per refused read would let any caller
grow a log nobody may prune and contend for the chain head, so, as for anonymous
authentication noise (tenants.auth_noise), each adds one to a counter row (minute, caller,
tenant, source address, action, code), outside the chain; `summarise` (beat, every minute)
writes one `api.refused_reads` event per caller and tenant for the closed minutes, in that
tenant's log, and deletes the rows it summarised.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from iaas.audit.service import Actor, audit_record
from iaas.models import AuditEvent, RefusedRead

logger = logging.getLogger(__name__)
ACTION = "api.refused_reads"


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def note(*, actor: Actor, tenant_id: uuid.UUID | None, action: str, code: str, status: int) -> None:
    """Count one refused read (and log it: the log line keeps the path and request id)."""
    logger.info(
        "refused read counted: %s %s",
        action,
        code,
        extra={"actor": actor.label, "status_code": status},
    )
    key = {
        "minute": _minute(timezone.now()),
        "actor_id": actor.user_id,
        "actor_label": actor.label[:150],
        "credential": actor.credential[:64],
        "tenant_id": tenant_id,
        "source_address": actor.source_address,
        "action": action[:64],
        "code": code[:64],
        "status": status,
    }
    rows = RefusedRead.objects.filter(**key)
    if rows.update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            RefusedRead.objects.create(**key, count=1)
    except IntegrityError:  # another request created the row first
        rows.update(count=F("count") + 1)


@transaction.atomic
def summarise(now: datetime | None = None) -> int:
    """Write one `api.refused_reads` event per caller and tenant for the closed minutes'
    counts, and delete them. Returns the number of refused reads summarised."""
    before = _minute(now or timezone.now())
    rows = list(RefusedRead.objects.select_for_update().filter(minute__lt=before).order_by("id"))
    groups: dict[tuple[object, ...], list[RefusedRead]] = defaultdict(list)
    for row in rows:
        groups[(row.tenant_id, row.actor_id, row.actor_label, row.credential)].append(row)
    for (tenant_id, actor_id, label, credential), group in groups.items():
        by_code: Counter[str] = Counter()
        by_action: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        for row in group:
            by_code[f"{row.status} {row.code}"] += row.count
            by_action[row.action] += row.count
            sources[row.source_address or "unknown"] += row.count
        addresses = {row.source_address for row in group}
        audit_record(
            actor=Actor(
                user_id=actor_id,  # type: ignore[arg-type]
                label=str(label),
                credential=str(credential),
                source_address=next(iter(addresses)) if len(addresses) == 1 else None,
            ),
            action=ACTION,
            tenant_id=tenant_id,  # type: ignore[arg-type]
            outcome=AuditEvent.Outcome.REFUSED,
            details={
                "from": min(row.minute for row in group).isoformat(),
                "until": (max(row.minute for row in group) + timedelta(minutes=1)).isoformat(),
                "total": sum(by_code.values()),
                "by_code": dict(sorted(by_code.items())),
                "by_action": dict(sorted(by_action.items())),
                "sources": dict(sources.most_common(10)),
            },
        )
    RefusedRead.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return sum(row.count for row in rows)
