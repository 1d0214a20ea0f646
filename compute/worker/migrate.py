"""Worker handler of a cold migration (the API side: compute.services.migrate).

Steps, each safe to run again: stop the guest on the source (graceful, forced after the
deadline); remove what an earlier attempt left on the target; copy its root disk
(flattened: the copy does not depend on the source's cached image) and its seed to the
target, through the worker (hypervisor.transfer); the tenant's networks on the target;
check the run still holds the operation and its claim (a run given up stops there); undefine
the source domain (its disks stay until the end); define the domain on the target
and start it if it was running. Then, in one transaction, the instance, its Allocation, its
ports and its shared volumes' attachments move to the target and the operation succeeds;
only then are the source's disks erased.

A failure at any step puts everything back: whatever was made on the target is removed,
the source domain is defined again (and started, if it was running), the target's claim is
released, and the operation fails with the reason (the instance's fault). When even the
source cannot be restored, the instance goes to `error`.
"""

from __future__ import annotations

import copy
import logging

from django.db import transaction

from compute.models import Instance, Migration
from compute.services import scheduler
from compute.services.migrate import migration_of
from compute.worker.steps import (
    Steps,
    domain_spec,
    ensure_network,
    pool_names,
    remove_artefacts,
    remove_disks,
    run_steps,
    shutdown_steps,
    start_domain,
    wait_running,
)
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from hypervisor.base import DriverError, Hypervisor, NotFound, PowerState, StorageVolumeSpec
from hypervisor.transfer import transfer_storage_volume
from iaas.audit import audit_record
from images.host_cache import stores_no_data
from network.selectors import device_ports
from network.services.devices import device_ports_move
from operations.messages import tenant_text
from operations.models import Operation
from operations.services.outcomes import fail, succeed
from operations.services.runs import LeaseLost, still_held, worker_actor
from volumes.selectors import boot_attachment
from volumes.services.attachments import volume_attachments_move

logger = logging.getLogger(__name__)


def _at(instance: Instance, host: Host) -> Instance:
    """The instance as seen on `host` (its disks, pools and console there), in memory."""
    moved = copy.copy(instance)
    moved.host = host
    return moved


def _exists(hv: Hypervisor, name: str) -> bool:
    try:
        hv.domain_info(name)
    except NotFound:
        return False
    return True


def _copy_disk(migration: Migration, volume: str, fmt: str, *, flatten: bool) -> None:
    """One of the instance's volumes in the target's instances pool, a copy of the source's
    (replacing a partial one). libvirt's fake hypervisor holds no data: the volume is only
    made there, of the same size."""
    source, target = migration.source_host, migration.target_host
    hv_source, hv_target = hypervisor_for(source), hypervisor_for(target)
    source_pool, target_pool = pool_names(source)["instances"], pool_names(target)["instances"]
    capacity = hv_source.storage_volume_info(source_pool, volume).capacity_bytes
    spec = StorageVolumeSpec(pool=target_pool, name=volume, capacity_bytes=capacity, format=fmt)
    if stores_no_data(source) or stores_no_data(target):
        hv_target.delete_storage_volume(target_pool, volume)
        hv_target.create_storage_volume(spec)
        return
    scratch = naming.migration_copy(migration.pk) if flatten else None
    transfer_storage_volume(hv_source, source_pool, volume, hv_target, spec, flatten_as=scratch)


def _still_ours(operation: Operation, migration: Migration) -> None:
    """Before the source's domain goes: the operation is still this run's and its claim on
    the target still holds. A run the sweeper gave up (a copy past the deadline) or that
    another worker took over stops here, and its roll-back puts the guest back on the
    source, where the database says it is."""
    still_held(operation)
    if not Migration.objects.filter(pk=migration.pk, status=Migration.Status.CLAIMED).exists():
        raise LeaseLost(f"migration {migration.pk} was given up")


def migrate_steps(
    operation: Operation, migration: Migration, instance: Instance, *, was_active: bool
) -> Steps:
    hv_source = hypervisor_for(migration.source_host)
    hv_target = hypervisor_for(migration.target_host)
    at_target = _at(instance, migration.target_host)
    name = naming.domain(instance.pk)
    ports = device_ports(instance.pk)
    steps: Steps = []
    if _exists(hv_source, name):  # a run again after the source was undefined: skip
        steps += shutdown_steps(hv_source, _at(instance, migration.source_host))
    # A run again after a worker died may find a domain of the last attempt on the target:
    # it goes, with its disks, before they are copied anew (a partial copy is never kept).
    steps.append(("clear_target", lambda: remove_artefacts(hv_target, at_target)))
    if boot_attachment(instance.pk) is None:  # a (shared) boot volume does not move
        root = naming.root_disk(instance.pk)
        steps.append(("copy_root_disk", lambda: _copy_disk(migration, root, "qcow2", flatten=True)))
    seed = naming.seed(instance.pk)
    steps += [
        ("copy_seed", lambda: _copy_disk(migration, seed, "raw", flatten=False)),
        ("network", lambda: ensure_network(hv_target, ports)),
        ("still_ours", lambda: _still_ours(operation, migration)),
        ("undefine_source", lambda: hv_source.undefine_domain(name)),
        ("define", lambda: hv_target.define_domain(domain_spec(at_target, ports))),
    ]
    if was_active:
        steps += [
            ("start", lambda: start_domain(hv_target, at_target)),
            ("wait_running", lambda: wait_running(hv_target, at_target)),
        ]
    return steps


def run_migrate(operation: Operation, instance: Instance) -> None:
    migration = migration_of(operation)
    was_active = bool(operation.params.get("was_active"))
    try:
        run_steps(operation, migrate_steps(operation, migration, instance, was_active=was_active))
    except Exception as exc:
        _roll_back(operation, migration, instance, exc, was_active=was_active)
        return
    power = PowerState.RUNNING if was_active else PowerState.SHUTOFF
    with transaction.atomic():
        scheduler.migration_complete(migration)
        Instance.objects.filter(pk=instance.pk).update(host=migration.target_host)
        device_ports_move(instance.pk, migration.target_host.name)
        volume_attachments_move(instance.pk, migration.target_host)
        audit_record(
            actor=worker_actor(),
            action="instance.migrated",
            tenant_id=instance.tenant_id,
            target=instance,
            details={
                "from": migration.source_host.name,
                "to": migration.target_host.name,
                "operation": str(operation.pk),
            },
        )
        succeed(operation, power_state=power)
    _erase_source(migration, instance)


def _erase_source(migration: Migration, instance: Instance) -> None:
    """The source's copies of the disks, erased. A failure is logged: the disks stay, and
    the reconciler reports them (an instance's disks on a host it is not on) to operators."""
    try:
        remove_disks(hypervisor_for(migration.source_host), migration.source_host, instance.pk)
    except DriverError:
        logger.exception(
            "instance %s migrated, but its disks on %s could not be erased",
            instance.pk,
            migration.source_host.name,
        )


def _roll_back(
    operation: Operation,
    migration: Migration,
    instance: Instance,
    exc: Exception,
    *,
    was_active: bool,
) -> None:
    """Remove what the migration made on the target, put the guest back on its source as it
    was, release the target's claim, fail the operation with the reason."""
    hv_source = hypervisor_for(migration.source_host)
    at_source = _at(instance, migration.source_host)
    status = None
    try:
        target = migration.target_host
        remove_artefacts(hypervisor_for(target), _at(instance, target))
    except DriverError:
        logger.exception("migration of %s: the target's copy could not be removed", instance.pk)
    try:
        hv_source.define_domain(domain_spec(at_source, device_ports(instance.pk)))
        if was_active:
            start_domain(hv_source, at_source)
            wait_running(hv_source, at_source)
    except Exception as restore_exc:
        logger.exception("migration of %s: the source could not be restored", instance.pk)
        status = Instance.Status.ERROR
        exc = DriverError(
            f"{tenant_text(exc)}; the instance could not be restored on its host either "
            f"({tenant_text(restore_exc)})"
        )
    power = PowerState.RUNNING if was_active else PowerState.SHUTOFF
    with transaction.atomic():
        scheduler.migration_release(migration, tenant_text(exc))
        changes = {"status": status} if status else {"power_state": power}
        fail(operation, instance, "migration", exc, **changes)


def abandon_migrate(operation: Operation, reason: str) -> None:
    """The sweeper gave the migration up: the target's claim is released (what is on the
    hosts is left for the reconciler to report)."""
    migration = Migration.objects.filter(pk=operation.params.get("migration")).first()
    if migration is not None:
        with transaction.atomic():
            scheduler.migration_release(migration, reason)
