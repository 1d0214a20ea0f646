"""The audit log: what a write records, that the log is append-only (in the model and, on
PostgreSQL, in the database), that `audit_verify` finds the first broken link of a tampered
chain, exports, and that concurrent writers still build one chain."""

from __future__ import annotations

import io
import itertools
import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from rest_framework.test import APIClient

from compute.models import KeyPair
from compute.services.keypairs import keypair_import
from iaas.audit import Actor, audit_record
from iaas.audit.chain import GENESIS_HASH, event_hash, hashed_fields
from iaas.models import AppendOnlyError, AuditChainHead, AuditEvent

URL = "/api/v1/keypairs"
TRIGGER = "iaas_auditevent_append_only"


@pytest.fixture
def postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only (production database)")


def tamper(sql: str, params: list | None = None) -> None:
    """Change the log as a privileged database user would: disable the trigger, write, enable."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE iaas_auditevent DISABLE TRIGGER {TRIGGER}")
        cursor.execute(sql, params or [])
        cursor.execute(f"ALTER TABLE iaas_auditevent ENABLE TRIGGER {TRIGGER}")


def verify() -> str:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def broken_at() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", stdout=io.StringIO())
    return str(failure.value)


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def member(tenant, make_caller):
    return make_caller(tenant, "member")


@pytest.fixture
def chain(tenant, member, ssh_public_keys) -> list[AuditEvent]:
    """A few real events (tenant, membership, token, three keypairs), oldest first."""
    client = member.client()
    for name in ("ed25519", "ecdsa", "rsa2048"):
        response = client.post(
            URL, {"name": name, "public_key": ssh_public_keys[name]}, format="json"
        )
        assert response.status_code == 201
    events = list(AuditEvent.objects.order_by("id"))
    assert len(events) == 6
    return events


# ---- what a write records -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_write_records_who_what_where_and_how(member, ssh_public_keys):
    client = member.client()
    response = client.post(
        URL,
        {"name": "laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
        HTTP_X_REQUEST_ID="trace-audit-01",
        REMOTE_ADDR="192.0.2.10",
    )
    assert response.status_code == 201
    keypair = KeyPair.objects.get()
    event = AuditEvent.objects.latest("id")
    token = member.user.api_tokens.get()
    assert event.action == "keypair.create"
    assert event.outcome == "success"
    assert event.actor_id == member.user.pk
    assert event.actor_label == member.user.username
    assert event.credential == f"token:{token.key_id}"
    assert event.tenant_id == member.tenant.pk
    assert (event.target_type, event.target_id, event.target_label) == (
        "keypair",
        str(keypair.pk),
        "laptop",
    )
    assert event.request_id == response["X-Request-Id"]  # ours, never the client's
    assert event.client_request_id == "trace-audit-01"
    assert event.source_address == "192.0.2.10"
    assert event.details == {"fingerprint": keypair.fingerprint, "key_type": "ssh-ed25519"}
    previous = AuditEvent.objects.filter(id__lt=event.id).latest("id")
    assert event.prev_hash == previous.hash
    assert event.hash == event_hash(hashed_fields(event))


@pytest.mark.django_db
def test_a_refused_write_is_recorded_as_refused_and_changes_nothing(member, ssh_public_keys):
    client = member.client()
    body = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    assert client.post(URL, body, format="json").status_code == 201
    response = client.post(URL, body, format="json", HTTP_X_REQUEST_ID="trace-dup-001")
    assert response.status_code == 409
    event = AuditEvent.objects.latest("id")
    assert event.action == "keypair.create"
    assert event.outcome == "refused"
    assert event.request_id == response["X-Request-Id"]
    assert event.client_request_id == "trace-dup-001"
    assert event.actor_id == member.user.pk
    assert event.details["code"] == "already_exists"
    assert event.details["status"] == 409
    assert KeyPair.objects.count() == 1
    verify()


@pytest.mark.django_db
def test_anonymous_noise_is_not_recorded():
    before = AuditEvent.objects.count()
    APIClient().post(URL, {"name": "x"}, format="json")
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_a_refused_token_is_recorded_without_its_secret(member):
    token = member.user.api_tokens.get()
    from tenants import services

    services.token_revoke(actor=Actor.system("tests"), token=token)
    response = member.client().get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome) == ("auth.token", "refused")
    assert event.credential == f"token:{token.key_id}"
    secret = member.token.split("_", 2)[2]
    assert secret not in json.dumps(list(AuditEvent.objects.values()), default=str)


# ---- verification --------------------------------------------------------------------------


@pytest.mark.django_db
def test_audit_verify_passes_on_an_intact_chain(chain):
    assert verify().splitlines()[0] == f"audit chain OK: {len(chain)} events verified"
    assert chain[0].prev_hash == GENESIS_HASH
    for earlier, later in itertools.pairwise(chain):
        assert later.prev_hash == earlier.hash
    head = AuditChainHead.objects.get()
    assert (head.last_event_id, head.last_hash) == (chain[-1].id, chain[-1].hash)


@pytest.mark.django_db
def test_audit_verify_passes_on_an_empty_log():
    assert verify().splitlines()[0] == "audit chain OK: 0 events verified"


@pytest.mark.usefixtures("postgres")
def test_changed_details_are_detected_at_the_first_changed_event(chain):
    first, second = chain[3], chain[4]
    for event in (second, first):  # the later one too: the first broken link is named
        tamper(
            "UPDATE iaas_auditevent SET details = %s WHERE id = %s",
            [json.dumps({"fingerprint": "SHA256:forged"}), event.id],
        )
    message = broken_at()
    assert f"BROKEN at event {first.id}:" in message
    assert "altered" in message
    assert "(3 events verified before it)" in message


@pytest.mark.usefixtures("postgres")
def test_changed_action_is_detected(chain):
    target = chain[2]
    tamper("UPDATE iaas_auditevent SET action = 'token.revoke' WHERE id = %s", [target.id])
    assert f"BROKEN at event {target.id}:" in broken_at()


@pytest.mark.usefixtures("postgres")
def test_a_rehashed_event_breaks_the_next_link(chain):
    """A forger who also recomputes the event's own hash is caught by the next event."""
    target = chain[3]
    target.outcome = "refused"
    forged = event_hash(hashed_fields(target))
    tamper(
        "UPDATE iaas_auditevent SET outcome = 'refused', hash = %s WHERE id = %s",
        [forged, target.id],
    )
    message = broken_at()
    assert f"BROKEN at event {chain[4].id}:" in message
    assert f"does not follow event {target.id}" in message


@pytest.mark.usefixtures("postgres")
def test_a_deleted_middle_event_is_detected(chain):
    removed = chain[2]
    tamper("DELETE FROM iaas_auditevent WHERE id = %s", [removed.id])
    message = broken_at()
    assert f"BROKEN at event {chain[3].id}:" in message
    assert f"does not follow event {chain[1].id}" in message


@pytest.mark.usefixtures("postgres")
def test_a_deleted_last_event_is_detected(chain):
    last = chain[-1]
    tamper("DELETE FROM iaas_auditevent WHERE id = %s", [last.id])
    message = broken_at()
    assert f"BROKEN at event {last.id}:" in message
    assert "removed" in message


# ---- append-only ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_model_refuses_changes_and_deletions(chain):
    event = AuditEvent.objects.get(pk=chain[2].pk)
    event.action = "forged"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == chain[2].action
    assert AuditEvent.objects.count() == len(chain)
    verify()


@pytest.mark.usefixtures("postgres")
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE iaas_auditevent SET action = 'forged' WHERE id = %s",
        "DELETE FROM iaas_auditevent WHERE id = %s",
    ],
)
def test_the_database_refuses_raw_updates_and_deletes(chain, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [chain[2].id])
    assert AuditEvent.objects.get(pk=chain[2].pk).action == chain[2].action
    verify()


# ---- reading and exporting -----------------------------------------------------------------


@pytest.fixture
def two_tenants(make_tenant, make_caller, ssh_public_keys):
    """Admins of acme and globex, each with one keypair."""
    admins = {}
    for slug, key in (("acme", "ed25519"), ("globex", "ecdsa")):
        admin = make_caller(make_tenant(slug), "admin")
        response = admin.client().post(
            URL, {"name": f"{slug}-key", "public_key": ssh_public_keys[key]}, format="json"
        )
        assert response.status_code == 201
        admins[slug] = admin
    return admins


def _export(client, url: str) -> list[dict]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-ndjson"
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.django_db
def test_a_tenant_exports_only_its_own_events(two_tenants):
    acme = two_tenants["acme"]
    lines = _export(acme.client(), "/api/v1/audit-events/export")
    own = AuditEvent.objects.filter(tenant_id=acme.tenant.pk).order_by("id")
    assert [line["id"] for line in lines] == [event.id for event in own]
    assert {line["tenant_id"] for line in lines} == {str(acme.tenant.pk)}
    assert "acme-key" in {line["target_label"] for line in lines}
    assert "globex-key" not in json.dumps(lines)
    first = lines[0]
    assert first["hash"] == own[0].hash
    assert first["prev_hash"] == own[0].prev_hash


@pytest.mark.django_db
def test_export_honours_filters(two_tenants):
    lines = _export(
        two_tenants["acme"].client(), "/api/v1/audit-events/export?action=keypair.create"
    )
    assert [line["target_label"] for line in lines] == ["acme-key"]


@pytest.mark.django_db
def test_only_tenant_admins_read_the_tenant_log(two_tenants, make_caller):
    member = make_caller(two_tenants["acme"].tenant, "member").client()
    for url in ("/api/v1/audit-events", "/api/v1/audit-events/export"):
        response = member.get(url)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.django_db
def test_the_tenant_list_is_newest_first_and_own_only(two_tenants):
    acme = two_tenants["acme"]
    results = acme.client().get("/api/v1/audit-events").json()["results"]
    ids = [item["id"] for item in results]
    assert ids == sorted(ids, reverse=True)
    assert {item["tenant_id"] for item in results} == {str(acme.tenant.pk)}


@pytest.mark.django_db
def test_operators_see_every_tenants_events(two_tenants, make_caller):
    operator = make_caller(None, operator=True).client()
    results = operator.get("/api/v1/admin/audit-events?limit=1000").json()["results"]
    tenants = {item["tenant_id"] for item in results}
    assert {str(a.tenant.pk) for a in two_tenants.values()} <= tenants
    assert len(results) == AuditEvent.objects.count()
    lines = _export(operator, "/api/v1/admin/audit-events/export")
    assert [line["id"] for line in lines] == list(
        AuditEvent.objects.order_by("id").values_list("id", flat=True)
    )
    one = two_tenants["globex"].tenant.pk
    filtered = operator.get(f"/api/v1/admin/audit-events?tenant={one}").json()["results"]
    assert filtered
    assert {item["tenant_id"] for item in filtered} == {str(one)}


@pytest.mark.django_db
def test_tenants_cannot_use_the_operator_log(two_tenants):
    response = two_tenants["acme"].client().get("/api/v1/admin/audit-events")
    assert response.status_code == 403


# ---- concurrency ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_build_one_valid_chain(make_tenant, ssh_public_keys):
    """Writers in different tenants (so no tenant lock orders them) append at the same time
    on real parallel connections; the chain head lock must keep one chain."""
    writers, per_writer = 4, 3
    tenants = [make_tenant(f"t{i}") for i in range(writers)]
    start = threading.Barrier(writers)
    failures: list[BaseException] = []
    keys = [ssh_public_keys[name] for name in ("ed25519", "ecdsa", "rsa2048")]

    def write(index: int) -> None:
        try:
            start.wait(timeout=10)
            for n in range(per_writer):
                keypair_import(
                    actor=Actor.system(f"writer-{index}"),
                    tenant=tenants[index],
                    name=f"key-{n}",
                    public_key=keys[n],
                )
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    events = list(AuditEvent.objects.filter(action="keypair.create"))
    assert len(events) == writers * per_writer
    prev_hashes = list(AuditEvent.objects.values_list("prev_hash", flat=True))
    assert len(prev_hashes) == len(set(prev_hashes)), "two events claim the same predecessor"
    verify()


@pytest.mark.django_db
def test_audit_record_outside_a_request_has_no_request_id_and_chains():
    first = audit_record(actor=Actor.system("cron"), action="platform.tick")
    second = audit_record(actor=Actor.system("cron"), action="platform.tick")
    assert second.prev_hash == first.hash
    assert first.request_id == ""
    verify()
