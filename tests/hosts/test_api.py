"""The operators' zones and hosts APIs through the generic cases
(tests/support/api_cases.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from hosts.models import Host, Zone
from tests.support.api_cases import (
    Call,
    OperatorCreateCases,
    OperatorDetailCases,
    OperatorListCases,
)
from tests.support.api_world import World


class TestOperatorZones(OperatorListCases, OperatorDetailCases, OperatorCreateCases):
    url = "/api/v1/admin/zones"
    model = Zone
    kind = "zone"
    audit_resource = "zone"

    def create_body(self, world: World) -> dict[str, Any]:
        return {"region": "fr-par", "name": "fr-par-9", "site": "DC9", "city": "Paris",
                "country": "FR", "jurisdiction": "FR"}  # fmt: skip


class TestOperatorHosts(OperatorListCases, OperatorDetailCases, OperatorCreateCases):
    """Hosts onboarded on libvirt's fake hypervisor; disable, enable and maintenance."""

    url = "/api/v1/admin/hosts"
    model = Host
    kind = "host"
    audit_resource = "host"
    detail_calls: ClassVar[tuple[Call, ...]] = (
        Call("POST", "disable", lambda w: {"reason": "RAM errors"}, verb="disable"),
        Call("POST", "enable", verb="enable"),
        Call("POST", "maintenance", verb="maintenance"),
    )

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "h-new", "zone": world.platform.zone.name,
                "libvirt_uri": "test:///default", "storage_root": "/fake/h-new"}  # fmt: skip
