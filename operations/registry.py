"""The action → handler registry of the operation pipeline (DESIGN §1).

Each app fills it in its `AppConfig.ready()`: the kinds of resource its operations change
(`register_target`) and the handler of each action (`register_action`). The dispatcher, the
outcomes (`succeed`, `fail`) and the deadline sweep find what they need here, so they work
for any target type without importing the app that owns it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from operations.models import Operation

Handler = Callable[[Operation, Any], None]
Abandon = Callable[[Operation, str], None]


@dataclass(frozen=True)
class TargetType:
    """How the pipeline reaches the resources of one type (`instance`, `volume`, …).

    - `load(target_id)`: the target a handler receives (raises if it is gone).
    - `settle(target_id, fault, changes)`: record an operation's outcome on its target, in
      the transaction that finishes the operation: `fault` is what the user reads (empty
      after a success), `changes` further field values (status, power state, …). The target
      is free for its next operation afterwards.
    - `abandon(operation, reason)`: the operation will never finish (it passed its
      deadline): put the target where its owner can act again, with `reason` as its fault.
    """

    name: str
    load: Callable[[uuid.UUID], Any]
    settle: Callable[[uuid.UUID, str, Mapping[str, Any]], None]
    abandon: Abandon


@dataclass(frozen=True)
class Action:
    """`handler(operation, target)` carries out the action (`<target type>.<verb>`); it ends
    the operation itself, through `succeed` or `fail`. `abandon`, when given, undoes what
    only this action leaves behind when it is abandoned (say, the image a snapshot was to
    fill), before the target type's own `abandon`."""

    name: str
    handler: Handler
    abandon: Abandon | None = None

    @property
    def target_type(self) -> str:
        return self.name.split(".", 1)[0]


_targets: dict[str, TargetType] = {}
_actions: dict[str, Action] = {}


def register_target(target: TargetType) -> None:
    """Declare a target type. Registering the same one again is a no-op (an app's `ready()`
    may run twice in tests); another one under the same name is a programming error."""
    _register(_targets, target.name, target)


def register_action(action: Action) -> None:
    """Declare an action; its target type must be registered first."""
    if action.target_type not in _targets:
        raise LookupError(f"action {action.name}: no target type {action.target_type!r}")
    _register(_actions, action.name, action)


def _register(table: dict[str, Any], name: str, entry: Any) -> None:
    known = table.get(name)
    if known is not None and known != entry:
        raise ValueError(f"{name!r} is already registered as {known!r}")
    table[name] = entry


def find_action(name: str) -> Action | None:
    return _actions.get(name)


def target_type(name: str) -> TargetType:
    """The registered target type `name` (KeyError for an unknown one)."""
    return _targets[name]


def find_target_type(name: str) -> TargetType | None:
    return _targets.get(name)


def action_names() -> list[str]:
    return sorted(_actions)


def unregister(name: str) -> None:
    """Forget an action or a target type (tests that register their own, then clean up)."""
    _actions.pop(name, None)
    _targets.pop(name, None)
