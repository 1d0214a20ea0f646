"""The audit log in the portal: the API's rules (tenants/api/audit_events.py) — tenant admins
only, the tenant's own events, newest first, the API's filters, and the API's export."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from iaas.audit import Actor, audit_record
from iaas.models import AuditEvent
from tenants.models import Role
from tests.support.portal_client import portal_client

SOMEONE = Actor(user_id=None, label="someone", credential="session")


def _client(user: Any, *, verified: bool = False) -> Client:
    return portal_client(user, verified=verified)


def _event(tenant: Any, label: str, action: str = "thing.poke") -> AuditEvent:
    return audit_record(
        actor=SOMEONE, action=action, tenant_id=tenant.pk, target_type="thing", target_label=label
    )


def _body(response: Any) -> str:
    return "".join(chunk.decode() for chunk in response.streaming_content)


@pytest.fixture
def acme(make_tenant, make_caller):
    tenant = make_tenant("acme")
    admin = make_caller(tenant, Role.ADMIN)
    return tenant, _client(admin.user, verified=True)


def test_an_admin_reads_this_tenants_events_newest_first(acme, make_tenant):
    tenant, client = acme
    other = make_tenant("other")
    _event(tenant, "first-acme-thing")
    _event(other, "foreign-thing")
    _event(tenant, "second-acme-thing")

    page = client.get("/t/acme/audit/")

    body = page.content.decode()
    assert page.status_code == 200
    assert "foreign-thing" not in body
    assert body.index("second-acme-thing") < body.index("first-acme-thing")


@pytest.mark.parametrize("role", [Role.READER, Role.MEMBER])
def test_readers_and_members_cannot_read_the_log_nor_see_its_link(acme, make_caller, role):
    tenant, _ = acme
    caller = make_caller(tenant, role)
    client = _client(caller.user)

    dashboard = client.get("/t/acme/").content.decode()

    assert 'href="/t/acme/audit/"' not in dashboard
    assert 'href="/t/acme/members/"' in dashboard
    assert client.get("/t/acme/audit/").status_code == 403
    assert client.get("/t/acme/audit/export/").status_code == 403
    event = _event(tenant, "x")
    assert client.get(f"/t/acme/audit/{event.pk}/").status_code == 403


def test_the_filters_are_the_apis(acme):
    tenant, client = acme
    _event(tenant, "poked-thing", action="thing.poke")
    _event(tenant, "prodded-thing", action="thing.prod")

    by_action = client.get("/t/acme/audit/", {"action": "thing.prod"}).content.decode()
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    by_date = client.get("/t/acme/audit/", {"since": tomorrow}).content.decode()
    today = timezone.localdate().isoformat()
    today_only = client.get("/t/acme/audit/", {"since": today, "until": today}).content.decode()

    assert "prodded-thing" in by_action
    assert "poked-thing" not in by_action
    assert "prodded-thing" not in by_date
    assert "No event matches." in by_date
    assert "poked-thing" in today_only


def test_an_inverted_date_range_is_said_and_filters_nothing(acme):
    _, client = acme

    answer = client.get("/t/acme/audit/", {"since": "2030-01-02", "until": "2030-01-01"})

    assert answer.status_code == 400
    assert "The last day comes before the first one." in answer.content.decode()


def test_pages_go_back_in_time(acme, monkeypatch):
    tenant, client = acme
    monkeypatch.setattr("portal.views.audit.PAGE_SIZE", 2)
    for n in range(5):
        _event(tenant, f"thing-{n}")
    newest = client.get("/t/acme/audit/", {"action": "thing.poke"})

    older = client.get(f"/t/acme/audit/?{newest.context['older_query']}")

    first, second = newest.content.decode(), older.content.decode()
    assert ("thing-4" in first, "thing-3" in first, "thing-2" in first) == (True, True, False)
    assert ("thing-2" in second, "thing-1" in second, "thing-4" in second) == (True, True, False)
    assert "action=thing.poke" in newest.context["older_query"]


def test_the_export_is_the_apis_for_the_filtered_events(acme, make_tenant):
    tenant, client = acme
    kept = [_event(tenant, "a", action="thing.prod"), _event(tenant, "b", action="thing.prod")]
    _event(tenant, "c", action="thing.poke")
    _event(make_tenant("other"), "d", action="thing.prod")

    answer = client.get("/t/acme/audit/export/", {"action": "thing.prod"})

    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/x-ndjson"
    assert "attachment" in answer["Content-Disposition"]
    lines = [json.loads(line) for line in _body(answer).splitlines()]
    assert [line["id"] for line in lines] == [e.pk for e in kept]
    assert {line["tenant_id"] for line in lines} == {str(tenant.pk)}
    assert lines[0]["hash"] == kept[0].hash


def test_an_event_page_shows_the_event_and_a_foreign_one_is_a_404(acme, make_tenant):
    tenant, client = acme
    mine = audit_record(
        actor=SOMEONE, action="thing.poke", tenant_id=tenant.pk, details={"size": "large"}
    )
    foreign = _event(make_tenant("other"), "foreign")

    page = client.get(f"/t/acme/audit/{mine.pk}/")

    assert page.status_code == 200
    assert mine.hash in page.content.decode()
    assert "large" in page.content.decode()
    assert client.get(f"/t/acme/audit/{foreign.pk}/").status_code == 404
