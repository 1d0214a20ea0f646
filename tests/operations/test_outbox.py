"""The outbox's sweeper (DESIGN §2): an operation recorded but never sent (its commit-time
send was lost) is sent again, and not twice in a row."""

from __future__ import annotations

import uuid

import pytest

from operations.services import outbox as operations
from tests.factories import SYSTEM


@pytest.mark.django_db
def test_the_sweeper_sends_operations_nobody_sent(make_tenant):
    # (Uses the real broker from CELERY_BROKER_URL; no worker consumes host.sweep-test.)
    # The test's transaction never commits, so the send operation_create schedules on commit
    # never happens: the row is exactly what a lost send leaves.
    op = operations.operation_create(
        actor=SYSTEM, tenant=make_tenant("t"), action="instance.create",
        target_id=uuid.uuid4(), host_name="sweep-test",
    )  # fmt: skip
    assert op.enqueued_at is None
    assert operations.sweep() == [str(op.pk)]
    op.refresh_from_db()
    assert op.enqueued_at is not None
    assert operations.sweep() == []  # sent recently and still queued: not yet again
