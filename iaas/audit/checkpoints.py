"""Signed checkpoints of the audit chain, kept outside the database (review M2).

A hash chain alone proves nothing to someone who can rewrite the whole table and recompute
every hash, or cut its tail and move the head back. So every few minutes (beat task
`iaas.audit_checkpoint`, or `manage.py audit_checkpoint`) the chain's head is written down:

    {"seq": 7, "event_id": 1234, "event_hash": "…", "events": 1234,
     "created_at": "…", "key_id": "ed25519:…", "previous": "<sha256 of line 6>",
     "signature": "<Ed25519 over the other fields, canonical JSON>"}

one JSON line appended (O_APPEND) to `AUDIT_CHECKPOINT_FILE` and logged (logger
`iaas.audit.checkpoints`, so the log shipper carries a copy off the machine). The key lives in
a file (iaas.audit.signing), never in the database. A new checkpoint is written only if the
chain still extends the previous one (same event, same hash, same count, every link since
then sound): a truncated or rewritten chain is never blessed by the next checkpoint.
`manage.py audit_verify` checks every checkpoint's signature and sequence and that the chain
still holds each signed event, with its hash and exactly that many events up to it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from iaas.audit import signing
from iaas.audit.chain import GENESIS_HASH
from iaas.audit.verify import Anchor, walk_chain
from iaas.models import AuditChainHead

logger = logging.getLogger(__name__)


class CheckpointError(Exception):
    """A checkpoint cannot be written or read: the message says what to do."""


RESTORE = "restore"
_RESTORE_FIELDS = ("kind", "restored_from", "supersedes_after")


@dataclass(frozen=True)
class Checkpoint:
    """One signed line. A `restore` checkpoint (kind "restore", written by `restore_finish`,
    iaas.audit.restore) says the chain was restored to this head from the backup taken at
    `restored_from`: the checkpoints after #`supersedes_after` up to it describe a chain
    that no longer exists and are no longer anchors. A periodic checkpoint has no such
    fields (its line and signature are as they always were)."""

    seq: int
    event_id: int | None
    event_hash: str
    events: int
    created_at: str
    key_id: str
    previous: str
    signature: str = ""
    kind: str = ""
    restored_from: str = ""
    supersedes_after: int = 0

    def fields(self) -> dict[str, Any]:
        fields = asdict(self)
        if not self.kind:
            for name in _RESTORE_FIELDS:
                del fields[name]
        return fields

    def message(self) -> bytes:
        """What the signature covers: every field but the signature, in canonical JSON."""
        fields = {key: value for key, value in self.fields().items() if key != "signature"}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))


def checkpoint_file() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_FILE)


def line_digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def parse_line(line: str) -> Checkpoint:
    """A checkpoint from one line of the file (ValueError if it is not one)."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    fields: dict[str, Any] = {}
    for name, types in (
        ("seq", int),
        ("event_id", (int, type(None))),
        ("event_hash", str),
        ("events", int),
        ("created_at", str),
        ("key_id", str),
        ("previous", str),
        ("signature", str),
    ):
        if name not in data or not isinstance(data[name], types):
            raise ValueError(f"field {name!r} is missing or of the wrong type")
        fields[name] = data[name]
    if "kind" in data:
        for name, types in (("kind", str), ("restored_from", str), ("supersedes_after", int)):
            if name not in data or not isinstance(data[name], types):
                raise ValueError(f"field {name!r} is missing or of the wrong type")
            fields[name] = data[name]
        if fields["kind"] != RESTORE:
            raise ValueError(f"unknown kind {fields['kind']!r}")
    if set(data) - set(fields):
        raise ValueError(f"unknown fields {sorted(set(data) - set(fields))}")
    return Checkpoint(**fields)


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-empty line of the checkpoint file, if it exists."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n")
            if line.strip():
                yield number, line


def last_line_of(path: Path) -> str | None:
    last = None
    for _, line in read_lines(path):
        last = line
    return last


def checkpoint_write(now: datetime | None = None) -> Checkpoint | None:
    """Sign the chain's head and append it to the checkpoint file (and the log). Returns the
    checkpoint, or None when the head has not moved since the last one. Raises
    CheckpointError, writing nothing, when the chain no longer extends the last checkpoint."""
    path = checkpoint_file()
    with locked_for_append(path) as fd:
        return _write_locked(fd, path, now or timezone.now())


@contextmanager
def locked_for_append(path: Path) -> Iterator[int]:
    """An append-only file of records (the checkpoints, the shred ledger) opened append-only
    (made 0600, its folder 0700), under an exclusive lock: one writer at a time (beat's task,
    the commands, a restore)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def append_signed(fd: int, checkpoint: Checkpoint) -> Checkpoint:
    """Sign `checkpoint`, append its line (fsynced) and log it; the signed checkpoint."""
    key = signing.signing_key()
    signature = signing.encode_signature(key.sign(checkpoint.message()))
    checkpoint = replace(checkpoint, signature=signature)
    line = checkpoint.line()
    os.write(fd, (line + "\n").encode())
    os.fsync(fd)
    logger.info(
        "audit %scheckpoint %d: %d events up to event %s",
        "restore " if checkpoint.kind else "",
        checkpoint.seq,
        checkpoint.events,
        checkpoint.event_id,
        extra={"audit_checkpoint": line},
    )
    return checkpoint


def _write_locked(fd: int, path: Path, now: datetime) -> Checkpoint | None:
    key = signing.signing_key()
    public = key.public_key()
    last_line = last_line_of(path)
    last: Checkpoint | None = None
    if last_line is not None:
        try:
            last = parse_line(last_line)
        except ValueError as exc:
            raise CheckpointError(
                f"the last line of {path} is not a checkpoint ({exc}); run audit_verify"
            ) from exc
        if not signing.signature_valid(public, last.message(), last.signature):
            raise CheckpointError(
                f"the last checkpoint in {path} is not signed by this key; run audit_verify"
            )
    head = AuditChainHead.objects.filter(pk=1).first()
    head_id = head.last_event_id if head else None
    head_hash = head.last_hash if head else GENESIS_HASH
    if last is not None and (last.event_id, last.event_hash) == (head_id, head_hash):
        return None
    start = (last.event_id, last.event_hash, last.events) if last else (None, GENESIS_HASH, 0)
    walked = walk_chain(after=start, up_to=(head_id, head_hash))
    if not walked.ok:
        logger.error("audit checkpoint refused: %s", walked.reason)
        raise CheckpointError(f"no checkpoint written: {walked.reason}")
    checkpoint = Checkpoint(
        seq=(last.seq + 1) if last else 1,
        event_id=head_id,
        event_hash=head_hash,
        events=walked.count,
        created_at=now.isoformat(),
        key_id=signing.key_id(public),
        previous=line_digest(last_line) if last_line is not None else "",
    )
    return append_signed(fd, checkpoint)


@dataclass(frozen=True)
class CheckpointCheck:
    """What `audit_verify` found in the checkpoint file: the anchors that still hold (those
    superseded by a restore checkpoint left out), the newest checkpoint, the restores."""

    anchors: list[Anchor]
    newest: Checkpoint | None = None
    problem: str = ""
    restores: tuple[Checkpoint, ...] = ()
    anchor_seqs: tuple[int, ...] = ()


def checkpoints_check(path: Path | None = None) -> CheckpointCheck:
    """Read every checkpoint of the file; each must be signed by the verify key, numbered in
    order and name the line before it. Returns the anchors for `verify_chain`: every
    checkpoint, except those a later restore checkpoint supersedes."""
    path = path or checkpoint_file()
    kept: list[tuple[Checkpoint, Anchor]] = []
    restores: list[Checkpoint] = []
    newest: Checkpoint | None = None
    previous_line: str | None = None
    key = None

    def found(problem: str = "") -> CheckpointCheck:
        return CheckpointCheck(
            [anchor for _, anchor in kept], newest, problem, tuple(restores),
            tuple(c.seq for c, _ in kept),
        )  # fmt: skip

    for number, line in read_lines(path):
        where = f"checkpoint line {number} of {path}"
        try:
            checkpoint = parse_line(line)
        except ValueError as exc:
            return found(f"{where} is not a checkpoint: {exc}")
        if key is None:
            try:
                key = signing.verify_key()
            except signing.SigningKeyError as exc:
                return found(str(exc))
        if not signing.signature_valid(key, checkpoint.message(), checkpoint.signature):
            return found(
                f"{where} has a bad signature: it was forged or altered "
                f"(it claims key {checkpoint.key_id}, the verify key is {signing.key_id(key)})"
            )
        expected_previous = line_digest(previous_line) if previous_line is not None else ""
        expected_seq = (newest.seq + 1) if newest else 1
        if checkpoint.seq != expected_seq or checkpoint.previous != expected_previous:
            return found(
                f"{where} is checkpoint #{checkpoint.seq} but does not follow the line before "
                f"it (expected #{expected_seq}): a checkpoint was removed, reordered or inserted"
            )
        if checkpoint.kind == RESTORE:
            problem = _supersede(kept, checkpoint)
            if problem:
                return found(f"{where}: {problem}")
            restores.append(checkpoint)
        elif kept and checkpoint.events < kept[-1][0].events:
            return found(f"{where} counts fewer events than checkpoint #{kept[-1][0].seq}")
        label = f"checkpoint #{checkpoint.seq} ({checkpoint.created_at})"
        if checkpoint.kind == RESTORE:
            label = f"restore checkpoint #{checkpoint.seq} ({checkpoint.created_at})"
        anchor = Anchor(
            label=label,
            event_id=checkpoint.event_id,
            event_hash=checkpoint.event_hash,
            events=checkpoint.events,
        )
        kept.append((checkpoint, anchor))
        newest, previous_line = checkpoint, line
    return found()


def _supersede(kept: list[tuple[Checkpoint, Anchor]], restore: Checkpoint) -> str:
    """Drop from `kept` the checkpoints `restore` supersedes (those after #supersedes_after);
    what is wrong with it, if anything."""
    after = restore.supersedes_after
    seqs = [checkpoint.seq for checkpoint, _ in kept]
    if after != 0 and after not in seqs:
        return (
            f"restore checkpoint #{restore.seq} resumes after checkpoint #{after}, which is "
            "not an anchor of the chain"
        )
    while kept and kept[-1][0].seq > after:
        kept.pop()
    if kept and restore.events < kept[-1][0].events:
        return (
            f"restore checkpoint #{restore.seq} counts fewer events than checkpoint "
            f"#{kept[-1][0].seq}, which it keeps"
        )
    return ""
