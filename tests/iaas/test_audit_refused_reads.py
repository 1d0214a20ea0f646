"""L5: refused reads (another tenant's id → 404, above one's role → 403) leave a trace, counted
and audited as one summary per caller instead of one event each; a client's X-Request-Id is
kept apart from ours, so no client can make its events share ids with another's."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from compute.models import KeyPair
from iaas.audit import refused_reads
from iaas.models import AuditEvent, RefusedRead
from operations.models import Operation
from tests import factories
from tests.support.instance_api import create

pytestmark = [pytest.mark.django_db]

GENERATED = re.compile(r"^req-[0-9a-f]{32}$")


def later() -> datetime:
    """A moment after the current minute closed, when beat summarises it."""
    return timezone.now() + timedelta(minutes=1)


def counted() -> int:
    return RefusedRead.objects.aggregate(total=Sum("count"))["total"] or 0


@pytest.fixture
def world(make_tenant, make_caller, ssh_public_keys):
    """acme's member (the prober) and admin; globex's keypair."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    secret = factories.keypair(globex, ssh_public_keys["ecdsa"], "globex-key")
    return {
        "member": make_caller(acme, "member"),
        "admin": make_caller(acme, "admin"),
        "globex_admin": make_caller(globex, "admin"),
        "foreign_keypair": secret,
    }


def test_probing_foreign_ids_and_reading_above_ones_role_is_summarised_per_caller(world):
    member, foreign = world["member"], world["foreign_keypair"]
    client = member.client()
    events_before = AuditEvent.objects.count()
    for _ in range(3):
        assert client.get(f"/api/v1/keypairs/{foreign.pk}").status_code == 404
    for _ in range(2):
        assert client.get("/api/v1/audit-events").status_code == 403
    assert client.head(f"/api/v1/keypairs/{foreign.pk}").status_code == 404

    assert AuditEvent.objects.count() == events_before, "no event per refused read"
    assert counted() == 6
    assert refused_reads.summarise(later()) == 6

    summary = AuditEvent.objects.latest("id")
    assert AuditEvent.objects.count() == events_before + 1
    assert (summary.action, summary.outcome) == ("api.refused_reads", "refused")
    assert summary.tenant_id == member.tenant.pk
    assert summary.actor_id == member.user.pk
    assert summary.credential == f"token:{member.user.api_tokens.get().key_id}"
    assert summary.source_address == "127.0.0.1"
    assert summary.details["total"] == 6
    assert summary.details["by_code"] == {"403 permission_denied": 2, "404 not_found": 4}
    assert summary.details["by_action"] == {"api.list": 2, "keypair.retrieve": 4}
    assert RefusedRead.objects.count() == 0
    # The probe changed nothing, and the probed tenant learns nothing of it.
    assert KeyPair.objects.get(pk=foreign.pk).name == "globex-key"
    globex = world["globex_admin"].client().get("/api/v1/audit-events?action=api.refused_reads")
    assert globex.json()["results"] == []
    # The prober's own tenant admin reads the summary in the tenant's log.
    acme = world["admin"].client().get("/api/v1/audit-events?action=api.refused_reads")
    assert [item["id"] for item in acme.json()["results"]] == [summary.id]
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().startswith("audit chain OK")


def test_callers_and_tenants_get_a_summary_each_and_open_minutes_wait(world):
    world["member"].client().get(f"/api/v1/keypairs/{world['foreign_keypair'].pk}")
    world["admin"].client().get(f"/api/v1/keypairs/{world['foreign_keypair'].pk}")
    before = AuditEvent.objects.count()
    assert refused_reads.summarise() == 0, "the current minute is still open"
    assert AuditEvent.objects.count() == before
    assert refused_reads.summarise(later()) == 2
    summaries = AuditEvent.objects.filter(action="api.refused_reads")
    assert {e.actor_id for e in summaries} == {world["member"].user.pk, world["admin"].user.pk}
    assert refused_reads.summarise(later()) == 0
    assert AuditEvent.objects.filter(action="api.refused_reads").count() == 2


def test_refused_writes_are_still_audited_one_by_one(world):
    response = world["member"].client().delete(f"/api/v1/keypairs/{world['foreign_keypair'].pk}")
    assert response.status_code == 404
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.details["code"]) == (
        "keypair.delete",
        "refused",
        "not_found",
    )
    assert counted() == 0


def test_beat_summarises_refused_reads_every_minute():
    tasks = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert tasks["iaas.summarise_refused_reads"] == 60.0


# ---- request ids -----------------------------------------------------------------------------


def test_a_client_cannot_make_its_events_share_a_request_id_with_anothers(
    make_tenant, make_caller, ssh_public_keys
):
    """Two callers send the same X-Request-Id: each event carries an id of ours, distinct,
    and the client's id only in client_request_id."""
    shared = "trace-shared-0001"
    events = []
    for slug, key in (("acme", "ed25519"), ("globex", "ecdsa")):
        caller = make_caller(make_tenant(slug), "member")
        response = caller.client().post(
            "/api/v1/keypairs",
            {"name": "laptop", "public_key": ssh_public_keys[key]},
            format="json",
            HTTP_X_REQUEST_ID=shared,
        )
        assert response.status_code == 201
        assert GENERATED.match(response["X-Request-Id"])
        assert response["X-Client-Request-Id"] == shared
        event = AuditEvent.objects.get(action="keypair.create", tenant_id=caller.tenant.pk)
        assert event.request_id == response["X-Request-Id"]
        assert event.client_request_id == shared
        events.append(event)
    assert events[0].request_id != events[1].request_id
    assert not AuditEvent.objects.filter(request_id=shared).exists()


def test_an_operation_carries_our_request_id_never_the_clients(cloud):
    response = cloud.client.post(
        "/api/v1/instances",
        {"name": "web-1", "flavor": "small", "image": str(cloud.image.pk), "keypair": "laptop"},
        format="json",
        HTTP_X_REQUEST_ID="trace-op-00001",
    )
    assert response.status_code == 202, response.content
    operation = Operation.objects.get(pk=response.json()["operation"]["id"])
    assert operation.request_id == response["X-Request-Id"]
    assert GENERATED.match(operation.request_id)


def test_a_request_without_a_client_id_gets_ours_only(cloud):
    response = create(cloud.client, cloud.image)
    operation = Operation.objects.get(pk=response.json()["operation"]["id"])
    assert operation.request_id == response["X-Request-Id"]
    assert not response.has_header("X-Client-Request-Id")
