"""The signed `restore` checkpoint: how `audit_verify` tells a restore from tampering.

Restoring the database from a backup puts the audit chain back to its head at backup time,
behind the checkpoints signed since: to `audit_verify` that looks exactly like a cut tail.
`restore_checkpoint_write` (run by `manage.py restore_finish`) first proves the restored
chain is the one the backup recorded and the one the older checkpoints signed — its head is
the backup's (event id, hash, count), every link from genesis holds, every checkpoint up to
the backup still matches — then appends, signed with the audit key:

    {"kind": "restore", "restored_from": "<when the backup was taken>",
     "supersedes_after": N, "event_id": …, "event_hash": …, "events": …, …}

"the chain was restored to this head; checkpoints after #N up to here are superseded".
`audit_verify` then anchors on checkpoints up to #N and on this one, and ignores the
superseded ones (still checking their signatures and sequence). A chain cut without such a
checkpoint still fails, and so does a restore checkpoint the chain does not match: only the
holder of the signing key can write one, and only for the chain it proved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from iaas.audit import signing
from iaas.audit.chain import GENESIS_HASH
from iaas.audit.checkpoints import (
    RESTORE,
    Checkpoint,
    CheckpointError,
    append_signed,
    checkpoint_file,
    checkpoints_check,
    last_line_of,
    line_digest,
    locked_for_append,
    parse_line,
)
from iaas.audit.verify import verify_chain
from iaas.models import AuditChainHead, AuditEvent


@dataclass(frozen=True)
class ChainHead:
    """The head of the chain as a backup recorded it: `events` events up to `event_id`."""

    event_id: int | None
    event_hash: str
    events: int


def chain_head_now() -> ChainHead:
    """The database's chain head and the number of events up to it."""
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.last_event_id is None:
        return ChainHead(None, GENESIS_HASH, 0)
    count = AuditEvent.objects.filter(pk__lte=head.last_event_id).count()
    return ChainHead(head.last_event_id, head.last_hash, count)


def restore_checkpoint_write(
    *, expected: ChainHead, restored_from: str, now: datetime | None = None
) -> Checkpoint:
    """Prove the restored chain and sign a `restore` checkpoint on its head (see the module's
    docstring). CheckpointError, nothing written, when the database's head is not `expected`,
    the chain is broken, or it contradicts a checkpoint signed before the backup."""
    path = checkpoint_file()
    with locked_for_append(path) as fd:
        found = checkpoints_check(path)
        if found.problem:
            raise CheckpointError(
                f"the checkpoint file is broken (run audit_verify): {found.problem}"
            )
        head = chain_head_now()
        if (head.event_id, head.event_hash) != (expected.event_id, expected.event_hash):
            raise CheckpointError(
                f"the restored chain's head is event {head.event_id} ({head.event_hash[:12]}…), "
                f"not the backup's event {expected.event_id} ({expected.event_hash[:12]}…): "
                "was the right dump restored, and was anything written since?"
            )
        keep = [
            (seq, anchor)
            for seq, anchor in zip(found.anchor_seqs, found.anchors, strict=True)
            if anchor.events <= expected.events
        ]
        report = verify_chain([anchor for _, anchor in keep])
        if not report.ok:
            raise CheckpointError(f"the restored audit chain does not hold: {report.reason}")
        if report.checked != expected.events:
            raise CheckpointError(
                f"the restored chain has {report.checked} events, the backup recorded "
                f"{expected.events}"
            )
        last = last_line_of(path)
        seq = parse_line(last).seq + 1 if last is not None else 1
        checkpoint = Checkpoint(
            seq=seq,
            event_id=head.event_id,
            event_hash=head.event_hash,
            events=head.events,
            created_at=(now or timezone.now()).isoformat(),
            key_id=signing.key_id(signing.signing_key().public_key()),
            previous=line_digest(last) if last is not None else "",
            kind=RESTORE,
            restored_from=restored_from,
            supersedes_after=keep[-1][0] if keep else 0,
        )
        return append_signed(fd, checkpoint)
