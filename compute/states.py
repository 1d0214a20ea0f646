"""An instance's lifecycle (DESIGN §3): the statuses a tenant sees, the task states of the
verbs in progress, and which verb may start from which status. Every verb goes through
`INSTANCE_LIFECYCLE.begin` (iaas.states): one guard, one 409 `wrong_state`."""

from __future__ import annotations

from django.db import models

from iaas.states import Lifecycle, Transition


class InstanceStatus(models.TextChoices):
    BUILDING = "building"
    ACTIVE = "active"
    STOPPED = "stopped"
    ERROR = "error"
    DELETING = "deleting"
    DELETED = "deleted"
    RESIZING = "resizing"
    VERIFY_RESIZE = "verify_resize"


class TaskState(models.TextChoices):
    """The verb in progress; null when the instance is idle."""

    SPAWNING = "spawning"
    DELETING = "deleting"
    STARTING = "starting"
    STOPPING = "stopping"
    REBOOTING = "rebooting"
    REBUILDING = "rebuilding"
    SNAPSHOTTING = "snapshotting"
    RESIZING = "resizing"
    CONFIRMING_RESIZE = "confirming"  # inside the confirming transaction only
    REVERTING_RESIZE = "reverting_resize"
    ATTACHING_INTERFACE = "attaching_nic"
    DETACHING_INTERFACE = "detaching_nic"
    ATTACHING_VOLUME = "attaching_vol"
    DETACHING_VOLUME = "detaching_vol"
    MIGRATING = "migrating"


_S = InstanceStatus
_RUNNABLE = frozenset({_S.ACTIVE, _S.STOPPED})
INSTANCE_LIFECYCLE = Lifecycle(
    "instance",
    {
        "delete": Transition(
            "be deleted",
            # In error: the tenant removes what is left. Verifying a resize: deleting
            # releases the larger claim.
            frozenset({_S.ACTIVE, _S.STOPPED, _S.ERROR, _S.VERIFY_RESIZE}),
            TaskState.DELETING,
            status=_S.DELETING,
        ),
        "start": Transition("start", frozenset({_S.STOPPED}), TaskState.STARTING),
        "stop": Transition("stop", frozenset({_S.ACTIVE}), TaskState.STOPPING),
        "reboot": Transition("reboot", frozenset({_S.ACTIVE}), TaskState.REBOOTING),
        "rebuild": Transition("rebuild", _RUNNABLE, TaskState.REBUILDING),
        "snapshot": Transition("snapshot", _RUNNABLE, TaskState.SNAPSHOTTING),
        "resize": Transition("resize", _RUNNABLE, TaskState.RESIZING, status=_S.RESIZING),
        "confirm_resize": Transition(
            "confirm a resize", frozenset({_S.VERIFY_RESIZE}), TaskState.CONFIRMING_RESIZE
        ),
        "attach_interface": Transition(
            "attach an interface", _RUNNABLE, TaskState.ATTACHING_INTERFACE
        ),
        "detach_interface": Transition(
            "detach an interface", _RUNNABLE, TaskState.DETACHING_INTERFACE
        ),
        "attach_volume": Transition("attach a volume", _RUNNABLE, TaskState.ATTACHING_VOLUME),
        "detach_volume": Transition("detach a volume", _RUNNABLE, TaskState.DETACHING_VOLUME),
        "migrate": Transition("be migrated", _RUNNABLE, TaskState.MIGRATING),
        "revert_resize": Transition(
            "revert a resize",
            frozenset({_S.VERIFY_RESIZE}),
            TaskState.REVERTING_RESIZE,
            status=_S.RESIZING,
        ),
    },
)

#: Statuses in which the instance has a guest whose console is worth reading.
CONSOLE_STATUSES = frozenset({_S.ACTIVE, _S.STOPPED, _S.ERROR, _S.VERIFY_RESIZE})
