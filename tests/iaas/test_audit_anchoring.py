"""M2: the audit chain is anchored by signed checkpoints kept outside the database.

Each attack of the review is played as the tables' owner (who may disable triggers): cutting
the tail and moving the head back, rewriting the whole chain with recomputed hashes,
truncating the log, forging or editing checkpoint lines. The chain alone still verifies after
each of them; `audit_verify` against the checkpoints does not, and says why."""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json
import logging
import logging.config
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from iaas.audit import Actor, audit_record
from iaas.audit.chain import event_hash, hashed_fields
from iaas.audit.checkpoints import line_digest, parse_line
from iaas.audit.signing import encode_signature, key_id, verify_key
from iaas.audit.verify import verify_chain
from iaas.models import AuditChainHead, AuditEvent
from iaas.tasks import audit_checkpoint

pytestmark = pytest.mark.django_db

TRIGGERS = {
    "iaas_auditevent": "iaas_auditevent_append_only",
    "iaas_auditchainhead": "iaas_auditchainhead_forward_only",
}


@pytest.fixture
def postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip("the triggers exist on PostgreSQL only (production database)")


def as_owner(*statements: tuple[str, list]) -> None:
    """What the tables' owner (or a superuser) can do: triggers off, write, triggers on."""
    with connection.cursor() as cursor:
        for table, trigger in TRIGGERS.items():
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        for sql, params in statements:
            cursor.execute(sql, params)
        for table, trigger in TRIGGERS.items():
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")


def record(n: int) -> list[AuditEvent]:
    return [
        audit_record(actor=Actor.system("tests"), action=f"test.event{i}", details={"n": i})
        for i in range(n)
    ]


def checkpoint() -> str:
    out = io.StringIO()
    call_command("audit_checkpoint", stdout=out)
    return out.getvalue()


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()


def verify_fails(*args: str) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", *args, stdout=io.StringIO())
    return str(failure.value)


def lines() -> list[str]:
    path = Path(settings.AUDIT_CHECKPOINT_FILE)
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def anchored() -> list[AuditEvent]:
    """Six events, then a checkpoint of them."""
    events = record(6)
    assert checkpoint().startswith("checkpoint #1: 6 events")
    return events


# ---- the honest chain ------------------------------------------------------------------------


def test_a_checkpoint_signs_the_head_and_is_appended_and_logged(caplog):
    events = record(3)
    with caplog.at_level(logging.INFO, logger="iaas.audit.checkpoints"):
        out = checkpoint()
    assert out.strip() == (
        f"checkpoint #1: 3 events up to event {events[-1].id}, appended to "
        f"{settings.AUDIT_CHECKPOINT_FILE}"
    )
    [line] = lines()
    written = parse_line(line)
    assert (written.seq, written.event_id, written.event_hash, written.events) == (
        1,
        events[-1].id,
        events[-1].hash,
        3,
    )
    assert written.previous == ""
    public = verify_key()
    assert written.key_id == key_id(public)
    public.verify(base64.b64decode(written.signature), written.message())
    logged = [r for r in caplog.records if getattr(r, "audit_checkpoint", None)]
    assert [r.audit_checkpoint for r in logged] == [line]


def test_the_signing_key_is_made_private_on_first_use():
    record(1)
    checkpoint()
    key_file = Path(settings.AUDIT_SIGNING_KEY)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key_file.read_text()
    assert "PUBLIC KEY" in Path(f"{key_file}.pub").read_text()
    assert stat.S_IMODE(Path(settings.AUDIT_CHECKPOINT_FILE).stat().st_mode) == 0o600


def test_a_checkpoint_is_written_only_when_the_chain_moved_and_names_the_previous_line():
    record(2)
    checkpoint()
    assert checkpoint().strip() == "the chain has not moved since the last checkpoint"
    assert len(lines()) == 1
    later = record(1)
    assert checkpoint().startswith(f"checkpoint #2: 3 events up to event {later[0].id}")
    first, second = lines()
    assert parse_line(second).previous == line_digest(first)


def test_audit_verify_passes_on_the_honest_chain_and_names_its_newest_checkpoint(anchored):
    record(2)
    checkpoint()
    newer = record(1)
    out = verify("--require-checkpoint").splitlines()
    assert out[0] == "audit chain OK: 9 events verified"
    assert out[1].startswith("anchored: 2 checkpoints verified, the newest #2")
    assert f"covers 8 events up to event {newer[0].id - 1}" in out[1]
    assert out[1].endswith("1 newer events are not anchored yet")


def test_require_checkpoint_fails_on_an_unanchored_chain():
    record(2)
    assert verify().splitlines()[1].endswith("the chain is not anchored")
    assert "audit chain NOT ANCHORED: no checkpoint" in verify_fails("--require-checkpoint")


def test_the_verify_key_alone_is_enough_to_verify(anchored, tmp_path):
    """An auditor holds the public key only."""
    key_file = Path(settings.AUDIT_SIGNING_KEY)
    public = tmp_path / "audit.pub"
    public.write_bytes(Path(f"{key_file}.pub").read_bytes())
    key_file.rename(tmp_path / "elsewhere.key")
    Path(f"{key_file}.pub").unlink()
    settings.AUDIT_VERIFY_KEY = str(public)
    assert verify("--require-checkpoint").startswith("audit chain OK: 6 events verified")


def test_a_configured_signing_key_that_is_missing_or_too_open_is_refused(tmp_path):
    record(1)
    settings.AUDIT_SIGNING_KEY = tmp_path / "missing.key"
    settings.AUDIT_SIGNING_KEY_CREATE = False
    with pytest.raises(CommandError, match="cannot read the audit signing key"):
        checkpoint()
    assert not (tmp_path / "missing.key").exists()
    open_key = tmp_path / "open.key"
    open_key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    open_key.chmod(0o644)
    settings.AUDIT_SIGNING_KEY = open_key
    with pytest.raises(CommandError, match="readable by others"):
        checkpoint()
    assert lines() == []


def test_beat_signs_a_checkpoint_every_few_minutes():
    entry = next(
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "iaas.audit_checkpoint"
    )
    assert entry["schedule"] == settings.AUDIT_CHECKPOINT_SECONDS <= 600
    events = record(2)
    assert audit_checkpoint.apply().get() == 1
    assert parse_line(lines()[0]).event_id == events[-1].id


# ---- attacks on the chain, as the tables' owner --------------------------------------------


@pytest.mark.usefixtures("postgres")
def test_a_truncated_tail_with_the_head_moved_back_is_detected(anchored):
    keep = anchored[3]
    as_owner(
        ("DELETE FROM iaas_auditevent WHERE id > %s", [keep.id]),
        ("UPDATE iaas_auditchainhead SET last_event_id = %s, last_hash = %s", [keep.id, keep.hash]),
    )
    assert verify_chain().ok, "the chain alone no longer shows it: only the checkpoint can"
    message = verify_fails()
    assert f"BROKEN at event {anchored[-1].id}: checkpoint #1" in message
    assert (
        f"signed 6 events up to event {anchored[-1].id}, which the chain no longer has" in message
    )
    assert "events were removed" in message


@pytest.mark.usefixtures("postgres")
def test_the_next_checkpoint_refuses_to_bless_a_truncated_chain(anchored):
    keep = anchored[3]
    as_owner(
        ("DELETE FROM iaas_auditevent WHERE id > %s", [keep.id]),
        ("UPDATE iaas_auditchainhead SET last_event_id = %s, last_hash = %s", [keep.id, keep.hash]),
    )
    record(5)  # new events after the cut: the head moved on past the old checkpoint's id
    with pytest.raises(CommandError, match=r"no checkpoint written: event \d+ is gone"):
        checkpoint()
    assert len(lines()) == 1
    assert "checkpoint #1" in verify_fails()


@pytest.mark.usefixtures("postgres")
def test_a_whole_chain_rewritten_with_recomputed_hashes_is_detected(anchored):
    statements = []
    previous = anchored[0].prev_hash
    for event in AuditEvent.objects.order_by("id"):
        event.details = {"n": "forged"}
        event.prev_hash = previous
        event.hash = event_hash(hashed_fields(event))
        statements.append(
            (
                "UPDATE iaas_auditevent SET details = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [json.dumps(event.details), event.prev_hash, event.hash, event.id],
            )
        )
        previous = event.hash
    statements.append(("UPDATE iaas_auditchainhead SET last_hash = %s", [previous]))
    as_owner(*statements)
    assert verify_chain().ok, "a keyless chain rewritten end to end still links"
    message = verify_fails()
    assert f"BROKEN at event {anchored[-1].id}:" in message
    assert "is not the event checkpoint #1" in message
    assert "the chain was rewritten" in message


@pytest.mark.usefixtures("postgres")
def test_a_truncated_log_is_detected(anchored):
    as_owner(("TRUNCATE iaas_auditevent, iaas_auditchainhead", []))
    assert verify_chain().ok
    assert "which the chain no longer has" in verify_fails()


# ---- attacks on the checkpoint file ----------------------------------------------------------


def forged_line(private: Ed25519PrivateKey, **fields: Any) -> str:
    last = parse_line(lines()[-1])
    draft = dataclasses.replace(
        last, seq=last.seq + 1, previous=line_digest(lines()[-1]), signature="", **fields
    )
    signature = encode_signature(private.sign(draft.message()))
    return dataclasses.replace(draft, signature=signature).line()


@pytest.mark.usefixtures("postgres")
def test_a_checkpoint_line_forged_with_another_key_is_detected(anchored):
    """The owner rewrote the chain and signs a checkpoint of it with a key of its own."""
    keep = anchored[2]
    as_owner(
        ("DELETE FROM iaas_auditevent WHERE id > %s", [keep.id]),
        ("UPDATE iaas_auditchainhead SET last_event_id = %s, last_hash = %s", [keep.id, keep.hash]),
    )
    ours = key_id(verify_key())
    line = forged_line(
        Ed25519PrivateKey.generate(), event_id=keep.id, event_hash=keep.hash, events=3, key_id=ours
    )
    with Path(settings.AUDIT_CHECKPOINT_FILE).open("a") as handle:
        handle.write(line + "\n")
    message = verify_fails()
    assert "checkpoint line 2 of" in message
    assert "has a bad signature: it was forged or altered" in message


def test_an_edited_checkpoint_line_is_detected(anchored):
    path = Path(settings.AUDIT_CHECKPOINT_FILE)
    path.write_text(path.read_text().replace('"events":6', '"events":4'))
    assert "checkpoint line 1 of" in verify_fails()
    assert "bad signature" in verify_fails()


def test_a_removed_checkpoint_line_is_detected(anchored):
    record(1)
    checkpoint()
    record(1)
    checkpoint()
    first, _, third = lines()
    Path(settings.AUDIT_CHECKPOINT_FILE).write_text(f"{first}\n{third}\n")
    message = verify_fails()
    assert "checkpoint line 2 of" in message
    assert "is checkpoint #3 but does not follow the line before it (expected #2)" in message


def test_a_garbled_checkpoint_file_is_detected_and_blocks_new_checkpoints(anchored):
    with Path(settings.AUDIT_CHECKPOINT_FILE).open("a") as handle:
        handle.write("not json\n")
    assert "checkpoint line 2 of" in verify_fails()
    record(1)
    with pytest.raises(CommandError, match="is not a checkpoint"):
        checkpoint()


# ---- the head row ----------------------------------------------------------------------------


@pytest.mark.usefixtures("postgres")
@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("UPDATE iaas_auditchainhead SET last_event_id = %(back)s, last_hash = %(back_hash)s",
         "only moves forward"),
        ("UPDATE iaas_auditchainhead SET last_event_id = %(ahead)s, last_hash = %(back_hash)s",
         "must move to the next event"),
        ("DELETE FROM iaas_auditchainhead", "cannot be removed"),
        ("INSERT INTO iaas_auditchainhead (id, last_event_id, last_hash) "
         "VALUES (2, %(back)s, %(back_hash)s)", "row with id 1"),
    ],
)  # fmt: skip
def test_the_chain_head_only_moves_forward_to_the_next_event(sql, refusal):
    events = record(3)
    values: dict[str, int | str] = {
        "back": events[0].id,
        "back_hash": events[0].hash,
        "ahead": events[-1].id + 1,
    }
    with (
        pytest.raises(DatabaseError, match=refusal),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, values)
    head = AuditChainHead.objects.get()
    assert (head.last_event_id, head.last_hash) == (events[-1].id, events[-1].hash)
    assert AuditChainHead.objects.count() == 1
    assert verify().startswith("audit chain OK: 3 events verified")


def test_checkpoints_reach_the_log_even_when_it_keeps_only_warnings(capsys):
    """The log shipper's copy is the one off this machine: a quiet log must still carry it."""
    quiet: dict[str, Any] = copy.deepcopy(settings.LOGGING)
    quiet["root"] = {**quiet["root"], "level": "WARNING"}
    logging.config.dictConfig(quiet)
    try:
        record(1)
        checkpoint()
    finally:
        logging.config.dictConfig(settings.LOGGING)
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    [line] = [entry for entry in logged if entry["logger"] == "iaas.audit.checkpoints"]
    assert line["audit_checkpoint"] == lines()[0]


@pytest.mark.usefixtures("postgres")
def test_a_removed_chain_head_is_detected_even_without_a_checkpoint():
    events = record(2)
    as_owner(("DELETE FROM iaas_auditchainhead", []))
    message = verify_fails()
    assert f"BROKEN at event {events[-1].id}: the chain head is missing" in message


def test_audit_verify_fails_when_events_stay_unanchored_too_long(anchored):
    """Monitoring runs audit_verify --max-unanchored-age: stopped checkpoints are noticed."""
    assert verify("--max-unanchored-age", "0").startswith("audit chain OK: 6 events")
    late = record(1)[0]
    message = verify_fails("--max-unanchored-age", "0")
    assert f"NOT ANCHORED in time: event {late.id} was written" in message
    assert "no checkpoint covers it yet (limit 0 s)" in message
    assert verify("--max-unanchored-age", "3600").startswith("audit chain OK: 7 events")
    checkpoint()
    assert verify("--max-unanchored-age", "0").startswith("audit chain OK: 7 events")
