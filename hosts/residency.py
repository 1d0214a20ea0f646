"""Where a tenant's data lives (DESIGN §6: `GET /api/v1/residency`, "where is my data").

Each app that keeps tenant data in a zone registers, in its `AppConfig.ready()`, a function
listing a tenant's holdings of one kind with the zone each lies in (images: their store's
zone; compute: an instance's host's zone). `residency_report` groups them by jurisdiction and
zone, beside the tenant's policy, so data left outside a narrowed policy shows as such.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hosts.models import Zone
from tenants.models import Tenant


@dataclass(frozen=True)
class Holding:
    """One resource of the tenant's that keeps data, and the zone that data lies in (None:
    nowhere yet, e.g. an image with no file)."""

    id: str
    name: str
    status: str
    zone_id: uuid.UUID | None


#: A tenant's holdings of one kind; must read through `tenants.selectors.tenant_scoped`.
HoldingsSource = Callable[[Tenant], Iterable[Holding]]
_sources: dict[str, HoldingsSource] = {}


def register_holdings(kind: str, source: HoldingsSource) -> None:
    """`kind` is the plural the report shows (`instances`, `images`)."""
    _sources[kind] = source


def holding_kinds() -> list[str]:
    return sorted(_sources)


def residency_report(tenant: Tenant) -> dict[str, Any]:
    """The tenant's policy, and per jurisdiction (every one the policy allows, and any other
    that holds its data) whether it is allowed and, per zone, what lies there."""
    kinds = holding_kinds()
    found: dict[uuid.UUID | None, dict[str, list[Holding]]] = {}
    for kind in kinds:
        for holding in _sources[kind](tenant):
            per_kind = found.setdefault(holding.zone_id, {k: [] for k in kinds})
            per_kind[kind].append(holding)
    zones = Zone.objects.select_related("region").filter(pk__in=[z for z in found if z])
    policy = list(tenant.residency)
    jurisdictions: dict[str, list[dict[str, Any]]] = {code: [] for code in policy}
    for zone in zones:
        jurisdictions.setdefault(zone.jurisdiction, []).append(
            {
                "name": zone.name,
                "region": zone.region.name,
                "city": zone.city,
                "country": zone.country,
                "certifications": list(zone.certifications),
                **{kind: [_item(h) for h in found[zone.pk][kind]] for kind in kinds},
            }
        )
    unplaced = found.get(None, {k: [] for k in kinds})
    return {
        "residency": policy,
        "jurisdictions": [
            {"jurisdiction": code, "allowed": code in policy, "zones": jurisdictions[code]}
            for code in sorted(jurisdictions)
        ],
        "unplaced": {kind: [_item(h) for h in unplaced[kind]] for kind in kinds},
    }


def _item(holding: Holding) -> dict[str, str]:
    return {"id": holding.id, "name": holding.name, "status": holding.status}
