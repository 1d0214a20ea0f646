"""An operation's steps as a page shows them: each step's name, outcome and seconds, and the
time the operation waited in its queue before a worker took it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operations.models import Operation


@dataclass(frozen=True)
class StepShown:
    name: str
    status: str
    seconds: float | None
    error: str


@dataclass(frozen=True)
class OperationShown:
    operation: Operation
    steps: list[StepShown]
    queued_seconds: float | None
    total_seconds: float | None


def _seconds(value: Any) -> float | None:
    try:
        return round(float(value), 1)
    except (TypeError, ValueError):
        return None


def with_step_timings(operations: list[Operation]) -> list[OperationShown]:
    shown = []
    for operation in operations:
        steps = [
            StepShown(
                name=str(entry.get("name", "")),
                status=str(entry.get("status", "")),
                seconds=_seconds(entry.get("seconds")),
                error=str(entry.get("error", "")),
            )
            for entry in operation.steps or []
            if isinstance(entry, dict)
        ]
        queued = (
            (operation.started_at - operation.created_at).total_seconds()
            if operation.started_at
            else None
        )
        total = (
            (operation.finished_at - operation.created_at).total_seconds()
            if operation.finished_at
            else None
        )
        shown.append(
            OperationShown(
                operation=operation,
                steps=steps,
                queued_seconds=_seconds(queued),
                total_seconds=_seconds(total),
            )
        )
    return shown
