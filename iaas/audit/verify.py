"""Checking the audit chain."""

from __future__ import annotations

from dataclasses import dataclass

from iaas.audit.chain import GENESIS_HASH, event_hash, hashed_fields
from iaas.models import AuditChainHead, AuditEvent


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_event_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_event_id is None and not self.reason


def verify_chain() -> ChainReport:
    """Walk every event in order; report the first one whose content or link is wrong."""
    previous = GENESIS_HASH
    last_id: int | None = None
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != previous:
            return ChainReport(
                checked,
                event.id,
                f"event {event.id} does not follow event {last_id}: an event before it was "
                "removed, inserted or altered",
            )
        if event_hash(hashed_fields(event)) != event.hash:
            return ChainReport(checked, event.id, f"event {event.id} was altered after writing")
        previous = event.hash
        last_id = event.id
        checked += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.last_hash != previous or head.last_event_id != last_id):
        return ChainReport(
            checked,
            head.last_event_id,
            f"the chain head names event {head.last_event_id} but the last event is {last_id}: "
            "events at the end were removed",
        )
    return ChainReport(checked)
