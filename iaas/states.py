"""Lifecycles of resources that run operations (DESIGN §3): a `status` the user sees and a
`task_state` naming the verb in progress (null when idle).

Each resource declares its verbs once, as `Transition`s (the statuses a verb may start from,
its task state, the status while it runs), and takes every verb through `Lifecycle.begin`:
a conditional update on the idle task state and an allowed status, so two concurrent verbs
can never both win, and a refusal is the same 409 `wrong_state` everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from iaas.errors import ConflictError


class Stateful(Protocol):
    """A model instance with a lifecycle."""

    pk: Any
    status: str
    task_state: str | None

    def refresh_from_db(self, using: Any = None, fields: Any = None) -> None: ...


@dataclass(frozen=True)
class Transition:
    """How a verb enters a lifecycle. `phrase` completes "it can … only when": `start`,
    `be deleted`."""

    phrase: str
    allowed: frozenset[str]
    task_state: str
    status: str | None = None  # the status while the verb runs, when it changes at once

    @property
    def needs(self) -> str:
        """The allowed statuses, for a message: `active or stopped`."""
        names = sorted(self.allowed)
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class Lifecycle:
    """The transitions of one kind of resource, and the one guard every verb goes through."""

    def __init__(self, noun: str, transitions: Mapping[str, Transition]) -> None:
        self.noun = noun
        self.transitions = dict(transitions)

    def allows(self, resource: Stateful, verb: str) -> bool:
        """Whether `verb` may start now, as far as `resource` (as read) tells."""
        transition = self.transitions[verb]
        return resource.task_state is None and resource.status in transition.allowed

    def check(self, resource: Stateful, verb: str) -> None:
        """Refuse (409 `wrong_state`) a verb its current state does not allow, before any
        other check; `begin` decides for good."""
        if not self.allows(resource, verb):
            raise self.wrong_state(resource, verb)

    def begin(self, resource: Stateful, verb: str, **changes: Any) -> None:
        """Take `resource` for `verb`: its task state (and status, if the verb changes it at
        once) and `changes` are written by a conditional update that only an idle resource
        in an allowed status passes; `resource` is re-read. 409 `wrong_state` otherwise."""
        transition = self.transitions[verb]
        updates = {"task_state": transition.task_state, **changes}
        if transition.status is not None:
            updates["status"] = transition.status
        manager = type(resource)._default_manager  # type: ignore[attr-defined]
        taken = manager.filter(
            pk=resource.pk, task_state__isnull=True, status__in=transition.allowed
        ).update(**updates)
        if not taken:
            raise self.wrong_state(resource, verb)
        resource.refresh_from_db()

    def wrong_state(self, resource: Stateful, verb: str) -> ConflictError:
        """The 409 for `verb` refused by the state `resource` is in (re-read to say which)."""
        transition = self.transitions[verb]
        resource.refresh_from_db()
        busy = f" ({resource.task_state})" if resource.task_state else ""
        return ConflictError(
            f"The {self.noun} is {resource.status}{busy}; it can {transition.phrase} only when "
            f"it is {transition.needs} and no other operation runs.",
            code="wrong_state",
            details={"status": resource.status, "task_state": resource.task_state},
        )
