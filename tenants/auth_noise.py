"""Anonymous authentication noise: counted and logged, audited as one summary a minute (M1).

Any client can send a million malformed bearer tokens, or keep a locked-out username busy.
Writing one audit event each would grow an append-only table nobody may prune and serialise
every audited write on the chain head. Instead each such refusal adds one to a counter row
(kind, source address, minute), outside the chain, and logs a line; once a minute is over,
`summarise` writes one `auth.noise` audit event with the totals and the busiest sources, and
deletes the rows it summarised. Refusals of a token whose secret matched (revoked, expired,
account disabled) are still audited one by one: they are worth knowing about.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from iaas.audit import Actor, audit_record
from tenants.models import AuthNoise

logger = logging.getLogger(__name__)
Kind = AuthNoise.Kind
TOP_SOURCES = 10


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def note(kind: str, address: str | None) -> None:
    """Count one refusal of `kind` from `address` (and log it, without any credential)."""
    logger.warning("authentication refused: %s", kind, extra={"source_address": address})
    minute = _minute(timezone.now())
    rows = AuthNoise.objects.filter(kind=kind, source_address=address, minute=minute)
    if rows.update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            AuthNoise.objects.create(kind=kind, source_address=address, minute=minute, count=1)
    except IntegrityError:  # another request created the row first
        rows.update(count=F("count") + 1)


@transaction.atomic
def summarise(now: datetime | None = None) -> int:
    """Write one `auth.noise` audit event for every closed minute's counts and delete them.
    Returns the number of refusals summarised (0: nothing to do, no event written)."""
    before = _minute(now or timezone.now())
    rows = list(AuthNoise.objects.select_for_update().filter(minute__lt=before))
    if not rows:
        return 0
    by_kind: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    for row in rows:
        by_kind[row.kind] += row.count
        by_source[row.source_address or "unknown"] += row.count
    total = sum(by_kind.values())
    audit_record(
        actor=Actor.system("auth-noise"),
        action="auth.noise",
        outcome="refused",
        details={
            "from": min(row.minute for row in rows).isoformat(),
            "until": (max(row.minute for row in rows) + timedelta(minutes=1)).isoformat(),
            "total": total,
            "by_kind": dict(sorted(by_kind.items())),
            "top_sources": by_source.most_common(TOP_SOURCES),
            "sources": len(by_source),
        },
    )
    AuthNoise.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return total
