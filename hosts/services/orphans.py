"""Orphan reports: what the reconciler found on a host and the database does not know
(DESIGN §2: reported, never silently deleted). Operators investigate and clear them."""

from __future__ import annotations

from typing import Any

from hosts.models import Host, OrphanReport
from iaas.audit import Actor, audit_record


def orphan_report(
    *, actor: Actor, host: Host, kind: str, name: str, details: dict[str, Any]
) -> bool:
    """Record (or refresh) the report of `name` of `kind` on `host`. The first sighting is
    audited as `host.orphan`; True then, False when it was already reported."""
    _report, created = OrphanReport.objects.update_or_create(
        host=host, kind=kind, name=name, defaults={"details": details}
    )
    if created:
        audit_record(
            actor=actor,
            action="host.orphan",
            target=host,
            details={"kind": kind, "name": name, **details},
        )
    return created
