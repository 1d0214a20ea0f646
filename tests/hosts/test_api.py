"""The operators' zones and hosts APIs through the generic cases
(tests/support/api_cases.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework.test import APIClient

from hosts.models import Host, Zone
from iaas.models import AuditEvent
from tests.support.api_cases import (
    Call,
    OperatorCreateCases,
    OperatorDetailCases,
    OperatorListCases,
)
from tests.support.api_checks import body_text, last_event_id
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

    def test_an_operator_creates_one(self, api: APIClient, world: World) -> None:
        """Onboarding is a worker's: the API answers 202 with the host pending."""
        operator = world.caller("operator")
        body = self.create_body(world)
        since = last_event_id()
        response = api.post(self.url, body, format="json", **operator.bearer())
        assert response.status_code == 202, body_text(response)
        assert response.json()["state"] == "pending"
        pk = response.json()["id"]
        assert Host.objects.filter(pk=pk, state="pending").exists()
        [event] = AuditEvent.objects.filter(id__gt=since, action="host.create", outcome="success")
        assert (event.actor_id, event.target_id) == (operator.user.pk, pk)
