"""How the operation pipeline reaches instances (operations.registry.TargetType)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from compute.models import Instance
from operations.models import Operation


def load_instance(instance_id: uuid.UUID) -> Instance:
    return Instance.objects.select_related("host", "flavor", "tenant").get(pk=instance_id)


def settle_instance(instance_id: uuid.UUID, fault: str, changes: Mapping[str, Any]) -> None:
    """The operation's outcome: the instance is idle again, with `fault` and `changes`."""
    Instance.objects.filter(pk=instance_id).update(task_state=None, fault=fault, **changes)


def abandon_instance(operation: Operation, reason: str) -> None:
    """Release the instance of an abandoned operation so its tenant can act again: one that
    was being built or deleted goes to `error` (what is on the host is unknown)."""
    instance = Instance.objects.filter(pk=operation.target_id).first()
    if instance is None:
        return
    unknown = (Instance.Status.BUILDING, Instance.Status.DELETING)
    status = Instance.Status.ERROR if instance.status in unknown else instance.status
    Instance.objects.filter(pk=instance.pk).update(task_state=None, status=status, fault=reason)
