"""The operation pipeline works for any target type (issue 8, item 2): a test target type
that is not an instance — a "widget" kept in memory — goes through queueing, the dispatcher,
steps, `succeed`, `fail`, the sweeper and the deadline, with nothing in operations/ knowing
it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from iaas.audit import Actor
from iaas.models import AuditEvent
from operations import registry
from operations.models import Operation
from operations.services import deadlines, outbox, outcomes, runs
from operations.worker import run_operation

SYSTEM = Actor.system("tests")


@dataclass
class Widget:
    """A target that lives outside the database: the registry is all the pipeline knows."""

    id: uuid.UUID
    color: str = "dull"
    fault: str = ""
    busy: bool = True
    polished_by: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"widget {self.color}"


@dataclass
class Shop:
    widgets: dict[uuid.UUID, Widget] = field(default_factory=dict)
    abandoned: list[tuple[str, str]] = field(default_factory=list)

    def load(self, widget_id: uuid.UUID) -> Widget:
        return self.widgets[widget_id]

    def settle(self, widget_id: uuid.UUID, fault: str, changes: Mapping[str, Any]) -> None:
        widget = self.widgets[widget_id]
        widget.fault, widget.busy = fault, False
        for name, value in changes.items():
            setattr(widget, name, value)

    def abandon(self, operation: Operation, reason: str) -> None:
        self.abandoned.append(("target", reason))
        self.settle(operation.target_id, reason, {})


def polish(operation: Operation, widget: Widget) -> None:
    """The test action's handler: one recorded step, then success or failure."""
    try:
        with runs.step(operation, "polish"):
            if operation.params.get("break"):
                raise RuntimeError("the polish ran out")
            if operation.params.get("taken_by"):  # meanwhile, another worker leases it
                Operation.objects.filter(pk=operation.pk).update(
                    lease_owner=operation.params["taken_by"]
                )
            if operation.params.get("swept"):  # meanwhile, the sweeper gives up on it
                late = timezone.now() - settings.OPERATION_DEADLINE - timedelta(seconds=1)
                Operation.objects.filter(pk=operation.pk).update(created_at=late)
                deadlines.fail_overdue_operations()
            widget.polished_by.append(runs.worker_id())
    except RuntimeError as exc:
        outcomes.fail(operation, widget, "polish", exc, color="scratched")
        return
    outcomes.succeed(operation, color="shiny")


@pytest.fixture
def shop() -> Iterator[Shop]:
    shop = Shop()
    registry.register_target(
        registry.TargetType("widget", load=shop.load, settle=shop.settle, abandon=shop.abandon)
    )
    registry.register_action(
        registry.Action(
            "widget.polish",
            polish,
            abandon=lambda operation, reason: shop.abandoned.append(("action", reason)),
        )
    )
    yield shop
    registry.unregister("widget.polish")
    registry.unregister("widget")


@pytest.fixture
def queue(shop: Shop, make_tenant: Any) -> Any:
    tenant = make_tenant("widgets")

    def queue(**params: Any) -> tuple[Operation, Widget]:
        widget = Widget(id=uuid.uuid4())
        shop.widgets[widget.id] = widget
        operation = outbox.operation_create(
            actor=SYSTEM,
            tenant=tenant,
            action="widget.polish",
            target_id=widget.id,
            host_name="widget-host",
            params=params,
        )
        return operation, widget

    return queue


@pytest.mark.django_db
def test_a_handler_registered_for_another_target_type_runs_and_succeeds(queue: Any) -> None:
    operation, widget = queue()
    assert operation.target_type == "widget"  # derived from the registered action

    assert run_operation(operation.pk) == Operation.Status.SUCCEEDED

    operation.refresh_from_db()
    assert (widget.color, widget.fault, widget.busy) == ("shiny", "", False)
    assert len(widget.polished_by) == 1
    assert [(s["name"], s["status"]) for s in operation.steps] == [("polish", "done")]
    assert (operation.status, operation.error, operation.attempts) == ("succeeded", "", 1)
    assert run_operation(operation.pk) == "skipped"  # finished: never run twice
    assert len(widget.polished_by) == 1


@pytest.mark.django_db
def test_a_failing_handler_settles_its_target_and_audits_the_failure(queue: Any) -> None:
    operation, widget = queue(**{"break": True})

    assert run_operation(operation.pk) == Operation.Status.FAILED

    operation.refresh_from_db()
    expected = "The polish failed: the polish ran out"
    assert (widget.color, widget.fault, widget.busy) == ("scratched", expected, False)
    assert (operation.status, operation.error) == ("failed", expected)
    assert operation.steps[0]["status"] == "failed"
    event = AuditEvent.objects.get(action="widget.polish", outcome="failed")
    assert (event.target_type, event.target_id) == ("widget", str(widget.id))
    assert event.target_label == "widget scratched"
    assert event.details["operation"] == str(operation.pk)


@pytest.mark.django_db
def test_the_sweeper_sends_again_an_unsent_operation_of_any_target_type(queue: Any) -> None:
    # (The real broker at CELERY_BROKER_URL; no worker consumes host.widget-host.)
    operation, _widget = queue()
    assert operation.enqueued_at is None  # the test's transaction never commits: not sent

    assert str(operation.pk) in outbox.sweep()

    operation.refresh_from_db()
    assert operation.enqueued_at is not None
    assert str(operation.pk) not in outbox.sweep()  # sent recently: not yet again


@pytest.mark.django_db
def test_an_operation_past_its_deadline_is_failed_and_its_target_released(
    queue: Any, shop: Shop, settings: Any
) -> None:
    operation, widget = queue()
    late = timezone.now() - settings.OPERATION_DEADLINE - timedelta(seconds=1)
    Operation.objects.filter(pk=operation.pk).update(created_at=late)
    on_time, _ = queue()

    assert deadlines.fail_overdue_operations() == [str(operation.pk)]

    operation.refresh_from_db()
    assert operation.status == "failed"
    assert "stopped by the reconciler" in operation.error
    assert [who for who, _reason in shop.abandoned] == ["action", "target"]
    assert (widget.fault, widget.busy) == (operation.error, False)
    assert Operation.objects.get(pk=on_time.pk).status == "queued"
    event = AuditEvent.objects.get(action="operation.stuck")
    assert event.details["action"] == "widget.polish"
    assert run_operation(operation.pk) == "skipped"  # a late worker does nothing


@pytest.mark.django_db
def test_an_action_nobody_registered_is_refused_at_creation_and_failed_by_the_worker(
    shop: Shop, make_tenant: Any
) -> None:
    tenant = make_tenant("widgets")
    with pytest.raises(LookupError):
        outbox.operation_create(
            actor=SYSTEM, tenant=tenant, action="widget.melt", target_id=uuid.uuid4(),
            host_name="widget-host",
        )  # fmt: skip
    assert not Operation.objects.exists()
    # A row written some other way (an older version's action) fails cleanly when run.
    stray = Operation.objects.create(
        tenant=tenant, action="widget.melt", target_type="widget", target_id=uuid.uuid4(),
        host_name="widget-host",
    )  # fmt: skip
    assert run_operation(stray.pk) == Operation.Status.FAILED
    stray.refresh_from_db()
    assert stray.error == "unknown action widget.melt"


def test_registering_is_idempotent_and_a_clash_is_refused(shop: Shop) -> None:
    action = registry.find_action("widget.polish")
    assert action is not None
    registry.register_action(action)  # the same again: a no-op (ready() may run twice)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_action(registry.Action("widget.polish", lambda op, target: None))
    with pytest.raises(LookupError, match="no target type"):
        registry.register_action(registry.Action("gadget.spin", polish))
    assert "instance.create" in registry.action_names()  # compute registered its own


@pytest.mark.django_db
def test_a_late_worker_cannot_overwrite_an_operation_the_sweeper_failed(queue: Any) -> None:
    """Found by the host-lost work: `finish` saved whatever the operation's state, so a
    worker whose lease the sweeper had given up on turned the failed operation back into a
    success."""
    operation, _widget = queue(swept=True)

    assert run_operation(operation.pk) == "lost"

    operation.refresh_from_db()
    assert operation.status == "failed"
    assert "stopped by the reconciler" in operation.error
    assert AuditEvent.objects.filter(action="operation.stuck").count() == 1


@pytest.mark.django_db
def test_a_worker_whose_operation_another_worker_leased_leaves_its_end_to_that_worker(
    queue: Any,
) -> None:
    operation, _widget = queue(taken_by="other-host:4242")

    assert run_operation(operation.pk) == "lost"

    operation.refresh_from_db()
    assert (operation.status, operation.lease_owner) == ("running", "other-host:4242")
    assert operation.finished_at is None
