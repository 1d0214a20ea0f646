"""Cold migration of an instance to another host, and draining a host (operators only; the
worker's side is compute.worker.migrate).

`instance_migrate` takes the instance (task state `migrating`; its status stays active or
stopped), asks the scheduler for another host with the same filters as a create (enabled —
so never a draining host —, in the tenant's residency policy, room), claims the instance's
size there under the host row's lock (a `Migration` holds it; the instance's Allocation
keeps holding its source) and queues `instance.migrate` on the source host's queue.

Refusals (409, nothing changed): `wrong_state` (busy, or not active/stopped),
`local_volume_attached` (a volume on the source host's disks is attached: it cannot follow;
shared rbd volumes can), `no_valid_host` / `residency_unsatisfiable` (nowhere to go).

`host_drain` marks the host `draining` (placements avoid it from then on) and asks a
migration of every instance on it; those refused are listed with the reason, the host
stays draining, and the operator deals with them (stop, detach, delete) and drains again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from compute.models import Instance, Migration
from compute.services import scheduler
from compute.services.instances import queue_operation
from compute.states import INSTANCE_LIFECYCLE
from hosts.models import Host
from hosts.services.hosts import host_begin_drain
from iaas.audit import Actor
from iaas.errors import ConflictError, DomainError
from operations.models import Operation
from operations.services.deadlines import copy_deadline_params
from volumes.selectors import attachments_of


def refuse_local_volumes(instance: Instance) -> None:
    """409 `local_volume_attached` when a volume on its host's own disks (a boot volume
    included) is attached to the instance: such a volume cannot follow it to another host."""
    local = [a.volume_id for a in attachments_of(instance.pk) if a.volume.ceph_cluster_id is None]
    if local:
        raise ConflictError(
            f"Instance {instance.name} has {len(local)} volume(s) stored on its host attached; "
            "they cannot move with it. Detach them (or move their data to a shared rbd "
            "volume) first.",
            code="local_volume_attached",
            details={"volumes": [str(volume_id) for volume_id in local]},
        )


@transaction.atomic
def instance_migrate(*, actor: Actor, instance: Instance) -> Operation:
    """Accept a cold migration of the instance to another host (see the module): the target
    is chosen and its capacity claimed now; the operation moves the guest."""
    instance = Instance.objects.select_related("tenant", "host", "flavor").get(pk=instance.pk)
    INSTANCE_LIFECYCLE.check(instance, "migrate")
    refuse_local_volumes(instance)
    assert instance.host is not None
    source = instance.host
    was_active = instance.status == Instance.Status.ACTIVE
    INSTANCE_LIFECYCLE.begin(instance, "migrate")  # a concurrent verb loses from here
    migration = scheduler.claim_migration(
        instance,
        scheduler.PlacementRequest(
            vcpus=instance.vcpus,
            memory_mb=instance.memory_mb,
            disk_gb=instance.disk_gb,
            jurisdictions=tuple(instance.tenant.residency),
            server_group_id=instance.server_group_id,
            exclude_host_id=source.pk,
        ),
    )  # NoValidHost / ResidencyUnsatisfiable roll everything back
    return queue_operation(
        actor=actor,
        instance=instance,
        action="instance.migrate",
        # The disks pass through the worker twice (download, upload): a copy's deadline.
        params={
            "migration": str(migration.pk),
            "was_active": was_active,
            **copy_deadline_params(instance.disk_gb),
        },
    )


@dataclass
class DrainResult:
    """What a drain request did: the migrations it queued, the instances it could not move."""

    host: Host
    operations: list[Operation] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)


def host_drain(*, actor: Actor, host: Host) -> DrainResult:
    """Mark the host `draining` (audited `host.drain`), then ask a migration of each of its
    instances, each in its own transaction (one refusal does not undo the others); an
    instance already migrating is left to its migration. Idempotent: draining again retries
    the instances left."""
    result = DrainResult(host=host_begin_drain(actor=actor, host=host))
    left = (
        Instance.objects.filter(host=host)
        .exclude(status=Instance.Status.DELETED)
        .order_by("created_at")
    )
    for instance in left:
        if instance.task_state == Instance.TaskState.MIGRATING:
            continue
        try:
            result.operations.append(instance_migrate(actor=actor, instance=instance))
        except DomainError as exc:
            result.refused.append(
                {"instance": str(instance.pk), "code": exc.code, "message": exc.message}
            )
    return result


def migration_of(operation: Operation) -> Migration:
    return Migration.objects.select_related("source_host", "target_host").get(
        pk=operation.params["migration"]
    )
