"""Checking the audit chain, alone or against anchors (signed checkpoints, checked and turned
into `Anchor`s by iaas.audit.checkpoints)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from iaas.audit.chain import GENESIS_HASH, event_hash, hashed_fields
from iaas.models import AuditChainHead, AuditEvent


@dataclass(frozen=True)
class Anchor:
    """A point of the chain recorded outside the database: `events` events up to and
    including `event_id` (None: the empty chain), the last one with hash `event_hash`."""

    label: str
    event_id: int | None
    event_hash: str
    events: int


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_event_id: int | None = None
    reason: str = ""
    anchors_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.broken_event_id is None and not self.reason


def verify_chain(anchors: Iterable[Anchor] = ()) -> ChainReport:
    """Walk every event in order; report the first one whose content or link is wrong, a head
    that does not name the last event, or an anchor the chain no longer matches."""
    pending = sorted((a for a in anchors if a.event_id is not None), key=lambda a: a.event_id or 0)
    matched = sum(1 for a in anchors if a.event_id is None and a.events == 0)
    for anchor in anchors:
        if anchor.event_id is None and anchor.events != 0:
            return ChainReport(0, None, f"{anchor.label} names no event but {anchor.events}")
    previous = GENESIS_HASH
    last_id: int | None = None
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if pending and (pending[0].event_id or 0) < event.id:
            return _missing(pending[0], checked, last_id)
        if event.prev_hash != previous:
            return ChainReport(
                checked,
                event.id,
                f"event {event.id} does not follow event {last_id}: an event before it was "
                "removed, inserted or altered",
                matched,
            )
        if event_hash(hashed_fields(event)) != event.hash:
            return ChainReport(
                checked, event.id, f"event {event.id} was altered after writing", matched
            )
        previous = event.hash
        last_id = event.id
        checked += 1
        while pending and pending[0].event_id == event.id:
            anchor = pending.pop(0)
            if anchor.event_hash != event.hash:
                return ChainReport(
                    checked,
                    event.id,
                    f"event {event.id} is not the event {anchor.label} signed (its hash "
                    "differs): the chain was rewritten",
                    matched,
                )
            if anchor.events != checked:
                return ChainReport(
                    checked,
                    event.id,
                    f"{anchor.label} signed {anchor.events} events up to event {event.id}, the "
                    f"chain has {checked}: events were removed or inserted",
                    matched,
                )
            matched += 1
    if pending:
        return _missing(pending[0], checked, last_id)
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None and last_id is not None:
        return ChainReport(
            checked,
            last_id,
            f"the chain head is missing although {checked} events exist: it was removed",
            matched,
        )
    if head is not None and (head.last_hash != previous or head.last_event_id != last_id):
        return ChainReport(
            checked,
            head.last_event_id,
            f"the chain head names event {head.last_event_id} but the last event is {last_id}: "
            "events at the end were removed",
            matched,
        )
    return ChainReport(checked, anchors_checked=matched)


def _missing(anchor: Anchor, checked: int, last_id: int | None) -> ChainReport:
    return ChainReport(
        checked,
        anchor.event_id,
        f"{anchor.label} signed {anchor.events} events up to event {anchor.event_id}, which "
        f"the chain no longer has (it holds {checked} events up to it, the last being "
        f"{last_id}): events were removed",
    )


@dataclass(frozen=True)
class Walk:
    count: int
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def walk_chain(*, after: tuple[int | None, str, int], up_to: tuple[int | None, str]) -> Walk:
    """Check that the chain still holds `after` (event id, hash, events up to it) and that
    every event from there to `up_to` (the head: event id, hash) links and hashes soundly.
    Returns the number of events up to the head. Cheap: it reads only the new events."""
    after_id, after_hash, after_count = after
    head_id, head_hash = up_to
    if after_id is not None:
        if head_id is None or head_id < after_id:
            return Walk(
                0,
                f"the chain head is at event {head_id}, behind the last checkpoint's event "
                f"{after_id}: the head was moved back or the chain emptied",
            )
        anchored = AuditEvent.objects.filter(pk=after_id).values_list("hash", flat=True).first()
        if anchored != after_hash:
            return Walk(
                0,
                f"event {after_id} is gone or its hash changed since the last checkpoint: "
                "the chain was rewritten",
            )
        upto = AuditEvent.objects.filter(pk__lte=after_id).count()
        if upto != after_count:
            return Walk(
                0,
                f"the last checkpoint counted {after_count} events up to event {after_id}, "
                f"the chain has {upto}: events were removed or inserted",
            )
    previous, count, last_id = after_hash, after_count, after_id
    events = AuditEvent.objects.order_by("id")
    if after_id is not None:
        events = events.filter(id__gt=after_id)
    events = events.filter(id__lte=head_id) if head_id is not None else events.none()
    for event in events.iterator(chunk_size=2000):
        if event.prev_hash != previous or event_hash(hashed_fields(event)) != event.hash:
            return Walk(count, f"event {event.id} breaks the chain; run audit_verify")
        previous, count, last_id = event.hash, count + 1, event.id
    if (last_id, previous) != (head_id, head_hash):
        return Walk(
            count,
            f"the chain head names event {head_id} but the chain ends at event {last_id}",
        )
    return Walk(count)
