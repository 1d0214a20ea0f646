"""A volume's lifecycle (DESIGN §3): its statuses, and which verb may start from which.

A volume has no separate task state: its transitional statuses (`creating`, `extending`,
`exporting`, `deleting`, `attaching`, `detaching`) name the verb in progress. Attached, a
volume is `in-use`: attaching → in-use → detaching → available. Every verb goes
through `VOLUME_LIFECYCLE.begin`: a conditional update on the allowed statuses, so two
concurrent verbs can never both win, and a refusal is the project's one 409 `wrong_state`
(the same code and message shape as iaas.states)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import timezone

from iaas.errors import ConflictError


class VolumeStatus(models.TextChoices):
    CREATING = "creating"
    AVAILABLE = "available"
    ATTACHING = "attaching"
    IN_USE = "in-use"
    DETACHING = "detaching"
    EXTENDING = "extending"
    EXPORTING = "exporting"
    DELETING = "deleting"
    ERROR = "error"
    DELETED = "deleted"


@dataclass(frozen=True)
class VolumeTransition:
    """How a verb enters the lifecycle: the statuses it may start from, and the status
    while it runs. `phrase` completes "it can … only when": `be extended`."""

    phrase: str
    allowed: frozenset[str]
    status: str

    @property
    def needs(self) -> str:
        names = sorted(self.allowed)
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class VolumeLifecycle:
    """The one guard every volume verb goes through."""

    def __init__(
        self, transitions: Mapping[str, VolumeTransition], *, noun: str = "volume"
    ) -> None:
        self.transitions = dict(transitions)
        self.noun = noun

    def check(self, volume: Any, verb: str) -> None:
        """Refuse (409 `wrong_state`) a verb the volume's status, as read, does not allow:
        the first answer, before any other check; `begin` decides for good."""
        if volume.status not in self.transitions[verb].allowed:
            raise self.wrong_state(volume, verb)

    def begin(self, volume: Any, verb: str, **changes: Any) -> None:
        """Take `volume` for `verb`: its status becomes the verb's, with `changes`, by a
        conditional update only a volume in an allowed status passes; `volume` is re-read.
        409 `wrong_state` otherwise."""
        transition = self.transitions[verb]
        taken = (
            type(volume)
            ._default_manager.filter(pk=volume.pk, status__in=transition.allowed)
            .update(status=transition.status, updated_at=timezone.now(), **changes)
        )
        volume.refresh_from_db()
        if not taken:
            raise self.wrong_state(volume, verb)

    def wrong_state(self, volume: Any, verb: str) -> ConflictError:
        transition = self.transitions[verb]
        return ConflictError(
            f"The {self.noun} is {volume.status}; it can {transition.phrase} only when it is "
            f"{transition.needs}.",
            code="wrong_state",
            details={"status": volume.status},
        )


_S = VolumeStatus
VOLUME_LIFECYCLE = VolumeLifecycle(
    {
        "extend": VolumeTransition(
            # In use: it grows live, the guest is told (issue 11, item 5).
            "be extended",
            frozenset({_S.AVAILABLE, _S.IN_USE}),
            _S.EXTENDING,
        ),
        "attach": VolumeTransition("be attached", frozenset({_S.AVAILABLE}), _S.ATTACHING),
        "detach": VolumeTransition("be detached", frozenset({_S.IN_USE}), _S.DETACHING),
        # Only detached: nothing writes to it while its copy is read, so the copy is
        # consistent (an attached volume's would be a torn read of a disk in use).
        "export": VolumeTransition("be exported", frozenset({_S.AVAILABLE}), _S.EXPORTING),
        "delete": VolumeTransition(
            # In error: the tenant removes what is left (its storage is wiped all the same).
            "be deleted",
            frozenset({_S.AVAILABLE, _S.ERROR}),
            _S.DELETING,
        ),
    }
)

#: Statuses in which a volume holds storage on its host (quota counts every one but deleted).
LIVE_STATUSES = frozenset(set(VolumeStatus.values) - {_S.DELETED})


class VolumeSnapshotStatus(models.TextChoices):
    """A volume snapshot's statuses: `creating` (the worker copies the volume) →
    `available`; `deleting` (the worker erases the copy) → `deleted`; `error` with a fault."""

    CREATING = "creating"
    AVAILABLE = "available"
    DELETING = "deleting"
    ERROR = "error"
    DELETED = "deleted"


_SS = VolumeSnapshotStatus
SNAPSHOT_LIFECYCLE = VolumeLifecycle(
    {
        "delete": VolumeTransition(
            "be deleted", frozenset({_SS.AVAILABLE, _SS.ERROR}), _SS.DELETING
        ),
    },
    noun="snapshot",
)
