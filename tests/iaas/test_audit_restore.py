"""A restore, as `audit_verify` sees it: the chain back at the backup's head, behind signed
checkpoints. A signed `restore` checkpoint (iaas.audit.restore) tells it from tampering: the
same cut without one still fails, and a restore checkpoint the chain does not match fails.
The restore is played as the tables' owner puts the older chain back (the real pg_restore:
tests/compute/test_restore_drill.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from django.conf import settings

from iaas.audit.checkpoints import CheckpointError, append_signed, locked_for_append
from iaas.audit.restore import ChainHead, chain_head_now, restore_checkpoint_write
from iaas.models import AuditEvent
from tests.iaas.test_audit_anchoring import (
    as_owner,
    checkpoint,
    lines,
    record,
    verify,
    verify_fails,
)

pytestmark = pytest.mark.django_db  # PostgreSQL: the triggers as_owner disables exist there


def back_to(head: ChainHead) -> None:
    """What restoring a dump taken at `head` does to the chain: the later events are gone."""
    as_owner(
        ("DELETE FROM iaas_auditevent WHERE id > %s", [head.event_id]),
        (
            "UPDATE iaas_auditchainhead SET last_event_id = %s, last_hash = %s",
            [head.event_id, head.event_hash],
        ),
    )


@pytest.fixture
def restored() -> ChainHead:
    """Checkpoint #1 (4 events), a backup at 6 events, checkpoints #2 and #3 after it, then
    the database restored from the backup."""
    record(4)
    checkpoint()
    record(2)
    backup = chain_head_now()
    record(3)
    checkpoint()
    record(1)
    checkpoint()
    back_to(backup)
    return backup


def test_a_restore_checkpoint_lets_the_restored_chain_verify(restored):
    cut = verify_fails("--require-checkpoint")  # a cut, until a restore checkpoint says why
    assert "checkpoint #2" in cut
    assert "events were removed" in cut
    written = restore_checkpoint_write(expected=restored, restored_from="2026-12-03T10:00:00Z")
    assert (written.seq, written.kind, written.supersedes_after) == (4, "restore", 1)
    assert (written.event_id, written.events) == (restored.event_id, 6)
    out = verify("--require-checkpoint")
    assert "audit chain OK: 6 events verified" in out
    assert "restored: checkpoint #4" in out
    assert "from the backup of 2026-12-03T10:00:00Z; checkpoints #2 to #3 superseded" in out
    # Life goes on: new events, the next periodic checkpoint extends the restored head.
    record(2)
    assert checkpoint().startswith("checkpoint #5: 8 events")
    assert "audit chain OK: 8 events verified" in verify("--require-checkpoint")


def test_after_a_restore_a_cut_without_a_restore_checkpoint_is_still_detected(restored):
    restore_checkpoint_write(expected=restored, restored_from="2026-12-03T10:00:00Z")
    events = record(3)
    checkpoint()
    back_to(ChainHead(events[0].id, events[0].hash, 7))
    message = verify_fails("--require-checkpoint")
    assert f"BROKEN at event {events[-1].id}: checkpoint #5" in message
    assert "events were removed" in message


def test_a_restore_checkpoint_is_refused_for_another_head_and_nothing_is_written(restored):
    before = lines()
    other = ChainHead(restored.event_id - 1, "f" * 64, 5)
    with pytest.raises(CheckpointError, match="not the backup's event"):
        restore_checkpoint_write(expected=other, restored_from="x")
    assert lines() == before


def test_a_restored_chain_that_contradicts_an_older_checkpoint_is_refused(restored):
    first = AuditEvent.objects.order_by("id")[0]
    as_owner(("UPDATE iaas_auditevent SET details = '{\"n\": \"forged\"}' WHERE id = %s",
              [first.id]))  # fmt: skip
    with pytest.raises(CheckpointError, match="does not hold"):
        restore_checkpoint_write(expected=restored, restored_from="x")


def test_a_signed_restore_checkpoint_the_chain_does_not_match_fails(restored):
    """Even the key's holder cannot bless a cut by naming a head the chain does not have."""
    written = restore_checkpoint_write(expected=restored, restored_from="x")
    path = Path(settings.AUDIT_CHECKPOINT_FILE)
    path.write_text("\n".join(lines()[:-1]) + "\n")
    wrong = dataclasses.replace(written, event_hash="e" * 64, signature="")
    with locked_for_append(path) as fd:
        append_signed(fd, wrong)
    message = verify_fails("--require-checkpoint")
    assert f"is not the event restore checkpoint #{written.seq}" in message


def test_a_restore_checkpoint_must_resume_after_an_anchor(restored):
    written = restore_checkpoint_write(expected=restored, restored_from="x")
    path = Path(settings.AUDIT_CHECKPOINT_FILE)
    path.write_text("\n".join(lines()[:-1]) + "\n")
    with locked_for_append(path) as fd:
        append_signed(fd, dataclasses.replace(written, supersedes_after=9, signature=""))
    assert "resumes after checkpoint #9, which is not an anchor" in verify_fails()


def test_a_restore_from_a_backup_newer_than_every_checkpoint_supersedes_none():
    record(3)
    checkpoint()
    record(2)
    backup = chain_head_now()
    record(1)  # written after the backup, lost, never anchored
    back_to(backup)
    written = restore_checkpoint_write(expected=backup, restored_from="x")
    assert (written.seq, written.supersedes_after, written.events) == (2, 1, 5)
    out = verify("--require-checkpoint")
    assert "audit chain OK: 5 events verified" in out
    assert "no checkpoint superseded" in out
    assert "anchored: 2 checkpoints verified" in out
