"""What a host's worker does with an operation (DESIGN §2 step 4-5).

Every step is idempotent (the driver's contracts make it so), so an operation whose worker
died can simply be run again by another. A failed build removes everything it made, releases
the capacity and the address, and leaves the instance in `error` with a fault a user can
read.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compute import cloudinit, ipam, scheduler
from compute.drivers.base import (
    DiskSpec,
    DomainSpec,
    DriverError,
    Hypervisor,
    NetworkSpec,
    NicSpec,
    NotFound,
    PowerState,
    StaticLease,
    VolumeSpec,
)
from compute.hypervisors import hypervisor_for
from compute.models import Host, Instance, Operation, Port, StoragePool
from compute.services import operations
from compute.services.hosts import pool_name
from iaas.audit import Actor, audit_record
from iaas.request_context import reset_request_id, set_request_id

logger = logging.getLogger(__name__)
GIB = 1024**3
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def base_volume(image_id: Any) -> str:
    return f"image-{image_id}"


def root_volume(instance: Instance) -> str:
    return f"instance-{instance.pk}-root"


def seed_volume(instance: Instance) -> str:
    return f"instance-{instance.pk}-seed"


def network_name(instance: Instance) -> str:
    return f"andr-t-{str(instance.tenant_id)[:8]}"


def bridge_name(instance: Instance) -> str:
    return f"andrbr{str(instance.tenant_id)[:8]}"  # 14 characters: Linux allows 15


def run_operation(operation_id: str) -> str:
    """Lease and run one operation. Returns its final status, or 'skipped' when another
    worker holds it or it already finished."""
    operation = operations.lease(operation_id, WORKER_ID)
    if operation is None:
        return "skipped"
    token = set_request_id(operation.request_id or f"op-{operation.pk}")
    try:
        handler = _HANDLERS.get(operation.action)
        if handler is None:
            operations.finish(operation, error=f"unknown action {operation.action}")
            return Operation.Status.FAILED
        instance = Instance.objects.select_related("host", "flavor", "tenant").get(
            pk=operation.target_id
        )
        handler(operation, instance)
        return operation.status
    finally:
        reset_request_id(token)


# --- instance.create ----------------------------------------------------------------------


def _pools(host: Host) -> dict[str, str]:
    return {role: pool_name(host.name, role) for role in StoragePool.Role.values}


def _cache_image(hv: Hypervisor, host: Host, image: Any) -> None:
    """The base image on the host, keyed by image id (whose content never changes)."""
    pools = _pools(host)
    name = base_volume(image.pk)
    try:
        info = hv.volume_info(pools["images"], name)
        if info.capacity_bytes >= (image.size_bytes or 0) and host.domain_type != "test":
            return
    except NotFound:
        pass
    hv.create_volume(
        VolumeSpec(
            pool=pools["images"],
            name=name,
            capacity_bytes=max(image.size_bytes or 0, 1),
            format=image.disk_format,
        )
    )
    if host.domain_type == "test":
        return  # libvirt's fake hypervisor stores no data: nothing to transfer
    from compute.services.images import image_file_path

    with open(image_file_path(image), "rb") as source:
        hv.upload_volume(pools["images"], name, source, image.size_bytes or 0)


def _build(operation: Operation, instance: Instance) -> None:
    from compute.models import Image

    host = instance.host
    assert host is not None
    hv = hypervisor_for(host)
    pools = _pools(host)
    image = Image.objects.get(pk=instance.image_id)
    port = Port.objects.select_related("network").get(instance=instance)
    network = port.network
    with operations.step(operation, "cache_image"):
        _cache_image(hv, host, image)
    with operations.step(operation, "root_disk"):
        hv.create_volume(
            VolumeSpec(
                pool=pools["instances"],
                name=root_volume(instance),
                capacity_bytes=max(instance.disk_gb * GIB, image.virtual_size_bytes or 0),
                format="qcow2",
                backing_pool=pools["images"],
                backing_volume=base_volume(image.pk),
                backing_format=image.disk_format,
            )
        )
    with operations.step(operation, "seed"):
        prefix = network.cidr.split("/")[1]
        seed = cloudinit.build_iso(
            cloudinit.Seed(
                instance_id=str(instance.pk),
                hostname=instance.name,
                mac=port.mac,
                address_cidr=f"{port.ip}/{prefix}",
                user_data=instance.user_data,
                ssh_public_keys=(instance.ssh_public_key,) if instance.ssh_public_key else (),
            )
        )
        hv.create_volume(
            VolumeSpec(
                pool=pools["instances"],
                name=seed_volume(instance),
                capacity_bytes=len(seed),
                format="raw",
            )
        )
        if host.domain_type != "test":
            import io

            hv.upload_volume(pools["instances"], seed_volume(instance), io.BytesIO(seed), len(seed))
    with operations.step(operation, "network"):
        hv.ensure_network(
            NetworkSpec(
                name=network_name(instance),
                bridge=bridge_name(instance),
                gateway_cidr=f"{ipam.gateway(network)}/{network.cidr.split('/')[1]}",
                # DHCP host names must be unique per network; tenant-chosen names need not be.
                leases=(StaticLease(mac=port.mac, ip=port.ip, hostname=f"i-{instance.pk.hex}"),),
            )
        )
    with operations.step(operation, "define"):
        hv.define_domain(domain_spec(instance, port))
    with operations.step(operation, "start"):
        hv.start_domain(str(instance.pk))
        deadline = time.monotonic() + settings.INSTANCE_BOOT_TIMEOUT_SECONDS
        while hv.domain_info(str(instance.pk)).power_state != PowerState.RUNNING:
            if time.monotonic() > deadline:
                raise DriverError("the instance did not reach running in time")
            time.sleep(0.5)


def domain_spec(instance: Instance, port: Port) -> DomainSpec:
    host = instance.host
    assert host is not None
    pools = _pools(host)
    return DomainSpec(
        name=str(instance.pk),
        title=instance.name,
        tenant_id=str(instance.tenant_id),
        instance_id=str(instance.pk),
        vcpus=instance.vcpus,
        memory_mb=instance.memory_mb,
        disks=(
            DiskSpec(pool=pools["instances"], volume=root_volume(instance), target="vda"),
            DiskSpec(
                pool=pools["instances"],
                volume=seed_volume(instance),
                target="sda",
                device="cdrom",
                bus="virtio",
                format="raw",
                readonly=True,
            ),
        ),
        nics=(NicSpec(network=network_name(instance), mac=port.mac),),
        domain_type=host.domain_type,
        console_log=f"{host.storage_root}/instances/instance-{instance.pk}-console.log",
    )


def _remove_artefacts(hv: Hypervisor, instance: Instance) -> None:
    """Remove the domain and its disks; every call is a no-op when the thing is gone."""
    host = instance.host
    assert host is not None
    pools = _pools(host)
    hv.destroy_domain(str(instance.pk))
    hv.undefine_domain(str(instance.pk))
    for volume in (root_volume(instance), seed_volume(instance)):
        hv.delete_volume(pools["instances"], volume, wipe=host.domain_type != "test")


def _release(instance: Instance) -> None:
    scheduler.release_allocation(instance)
    Port.objects.filter(instance=instance).delete()


def _instance_create(operation: Operation, instance: Instance) -> None:
    host = instance.host
    assert host is not None
    try:
        _build(operation, instance)
    except Exception as exc:
        logger.exception("build of instance %s failed", instance.pk)
        fault = f"The build failed on host {host.name}: {exc}"
        try:
            _remove_artefacts(hypervisor_for(host), instance)
        except DriverError as cleanup_exc:
            fault += f" (cleanup incomplete, an operator is told: {cleanup_exc})"
        with transaction.atomic():
            _release(instance)
            Instance.objects.filter(pk=instance.pk).update(
                status=Instance.Status.ERROR, task_state=None, fault=fault[:2000]
            )
            operations.finish(operation, error=fault)
            audit_record(
                actor=Actor.system(f"worker {WORKER_ID}"),
                action="instance.build",
                tenant_id=instance.tenant_id,
                target=instance,
                outcome="failed",
                details={"error": str(exc)[:500]},
            )
        return
    with transaction.atomic():
        Instance.objects.filter(pk=instance.pk).update(
            status=Instance.Status.ACTIVE, task_state=None, power_state=PowerState.RUNNING, fault=""
        )
        operations.finish(operation)


# --- instance.delete ----------------------------------------------------------------------


def _instance_delete(operation: Operation, instance: Instance) -> None:
    host = instance.host
    assert host is not None
    try:
        with operations.step(operation, "remove"):
            _remove_artefacts(hypervisor_for(host), instance)
    except DriverError as exc:
        with transaction.atomic():
            Instance.objects.filter(pk=instance.pk).update(
                status=Instance.Status.ERROR,
                task_state=None,
                fault=f"Delete failed on host {host.name}: {exc}. Retry the delete.",
            )
            operations.finish(operation, error=str(exc))
        return
    with transaction.atomic():
        _release(instance)
        Instance.objects.filter(pk=instance.pk).update(
            status=Instance.Status.DELETED,
            task_state=None,
            power_state="",
            deleted_at=timezone.now(),
        )
        operations.finish(operation)


# --- instance.start / instance.stop / instance.reboot -----------------------------------


def _wait_for_power(hv: Hypervisor, instance: Instance, wanted: PowerState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while hv.domain_info(str(instance.pk)).power_state != wanted:
        if time.monotonic() > deadline:
            raise DriverError(f"the instance did not reach {wanted} within {timeout:g} s")
        time.sleep(0.5)


def _run_verb(
    operation: Operation,
    instance: Instance,
    *,
    verb: str,
    steps: list[tuple[str, Any]],
    done_status: str,
    done_power: PowerState,
) -> None:
    """Run a lifecycle verb's steps; on success set the new status and power state, on a
    failure keep the previous status and tell the tenant why (the fault)."""
    host = instance.host
    assert host is not None
    try:
        for name, call in steps:
            with operations.step(operation, name):
                call()
    except Exception as exc:
        logger.exception("%s of instance %s failed", verb, instance.pk)
        fault = f"The {verb} failed on host {host.name}: {exc}"
        with transaction.atomic():
            Instance.objects.filter(pk=instance.pk).update(task_state=None, fault=fault[:2000])
            operations.finish(operation, error=fault)
            audit_record(
                actor=Actor.system(f"worker {WORKER_ID}"),
                action=f"instance.{verb}",
                tenant_id=instance.tenant_id,
                target=instance,
                outcome="failed",
                details={"error": str(exc)[:500], "operation": str(operation.pk)},
            )
        return
    with transaction.atomic():
        Instance.objects.filter(pk=instance.pk).update(
            status=done_status, task_state=None, power_state=done_power, fault=""
        )
        operations.finish(operation)


def _instance_start(operation: Operation, instance: Instance) -> None:
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    name = str(instance.pk)
    _run_verb(
        operation,
        instance,
        verb="start",
        steps=[
            ("start", lambda: hv.start_domain(name)),  # already running: a no-op
            (
                "wait_running",
                lambda: _wait_for_power(
                    hv, instance, PowerState.RUNNING, settings.INSTANCE_BOOT_TIMEOUT_SECONDS
                ),
            ),
        ],
        done_status=Instance.Status.ACTIVE,
        done_power=PowerState.RUNNING,
    )


def _instance_stop(operation: Operation, instance: Instance) -> None:
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    name = str(instance.pk)

    def shutdown() -> None:
        # Graceful (ACPI) first; forced off after the deadline. Already off: a no-op.
        if not hv.shutdown_domain(name, settings.INSTANCE_STOP_TIMEOUT_SECONDS):
            logger.info("instance %s ignored the power-off request: forced off", instance.pk)

    _run_verb(
        operation,
        instance,
        verb="stop",
        steps=[
            ("shutdown", shutdown),
            (
                "wait_shutoff",
                lambda: _wait_for_power(hv, instance, PowerState.SHUTOFF, 30),
            ),
        ],
        done_status=Instance.Status.STOPPED,
        done_power=PowerState.SHUTOFF,
    )


def _instance_reboot(operation: Operation, instance: Instance) -> None:
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    name = str(instance.pk)
    hard = operation.params.get("type") == "hard"

    def reboot() -> None:
        if hv.domain_info(name).power_state != PowerState.RUNNING:
            # Off (e.g. a redelivery after the guest powered off, or drift): boot it.
            hv.start_domain(name)
        else:
            hv.reboot_domain(name, hard=hard)

    _run_verb(
        operation,
        instance,
        verb="reboot",
        steps=[
            ("reboot_hard" if hard else "reboot_soft", reboot),
            (
                "wait_running",
                lambda: _wait_for_power(
                    hv, instance, PowerState.RUNNING, settings.INSTANCE_BOOT_TIMEOUT_SECONDS
                ),
            ),
        ],
        done_status=Instance.Status.ACTIVE,
        done_power=PowerState.RUNNING,
    )


# --- instance.rebuild ---------------------------------------------------------------------


def _fresh_root_disk(hv: Hypervisor, instance: Instance, image: Any) -> None:
    """Replace the root overlay by a new one on `image`: the old one is wiped (its data must
    not leak), then a fresh one made. Run again, it makes yet another fresh one."""
    host = instance.host
    assert host is not None
    pools = _pools(host)
    hv.delete_volume(pools["instances"], root_volume(instance), wipe=host.domain_type != "test")
    hv.create_volume(
        VolumeSpec(
            pool=pools["instances"],
            name=root_volume(instance),
            capacity_bytes=max(instance.disk_gb * GIB, image.virtual_size_bytes or 0),
            format="qcow2",
            backing_pool=pools["images"],
            backing_volume=base_volume(image.pk),
            backing_format=image.disk_format,
        )
    )


def _fresh_seed(hv: Hypervisor, instance: Instance, port: Port) -> None:
    """Rewrite the NoCloud seed: the same instance id, hostname, MAC and address."""
    import io

    host = instance.host
    assert host is not None
    pools = _pools(host)
    seed = cloudinit.build_iso(
        cloudinit.Seed(
            instance_id=str(instance.pk),
            hostname=instance.name,
            mac=port.mac,
            address_cidr=f"{port.ip}/{port.network.cidr.split('/')[1]}",
            user_data=instance.user_data,
            ssh_public_keys=(instance.ssh_public_key,) if instance.ssh_public_key else (),
        )
    )
    hv.delete_volume(pools["instances"], seed_volume(instance), wipe=host.domain_type != "test")
    hv.create_volume(
        VolumeSpec(
            pool=pools["instances"],
            name=seed_volume(instance),
            capacity_bytes=len(seed),
            format="raw",
        )
    )
    if host.domain_type != "test":
        hv.upload_volume(pools["instances"], seed_volume(instance), io.BytesIO(seed), len(seed))


def _instance_rebuild(operation: Operation, instance: Instance) -> None:
    """Power off, wipe the root disk, lay a fresh overlay on the new image, rewrite the
    seed, redefine (same name, UUID and MAC) and boot. A failure leaves the instance in
    `error` with a fault; it keeps its allocation and address (it still exists)."""
    from compute.models import Image

    host = instance.host
    assert host is not None
    hv = hypervisor_for(host)
    name = str(instance.pk)
    try:
        image = Image.objects.get(pk=operation.params["image"])
        port = Port.objects.select_related("network").get(instance=instance)
        network = port.network
        steps: list[tuple[str, Any]] = [
            ("destroy", lambda: hv.destroy_domain(name)),  # the definition is kept
            ("cache_image", lambda: _cache_image(hv, host, image)),
            ("root_disk", lambda: _fresh_root_disk(hv, instance, image)),
            ("seed", lambda: _fresh_seed(hv, instance, port)),
            (
                "network",
                lambda: hv.ensure_network(
                    NetworkSpec(
                        name=network_name(instance),
                        bridge=bridge_name(instance),
                        gateway_cidr=f"{ipam.gateway(network)}/{network.cidr.split('/')[1]}",
                        leases=(
                            StaticLease(mac=port.mac, ip=port.ip, hostname=f"i-{instance.pk.hex}"),
                        ),
                    )
                ),
            ),
            ("define", lambda: hv.define_domain(domain_spec(instance, port))),
            ("start", lambda: hv.start_domain(name)),
            (
                "wait_running",
                lambda: _wait_for_power(
                    hv, instance, PowerState.RUNNING, settings.INSTANCE_BOOT_TIMEOUT_SECONDS
                ),
            ),
        ]
        for step_name, call in steps:
            with operations.step(operation, step_name):
                call()
    except Exception as exc:
        logger.exception("rebuild of instance %s failed", instance.pk)
        fault = f"The rebuild failed on host {host.name}: {exc}"
        with transaction.atomic():
            Instance.objects.filter(pk=instance.pk).update(
                status=Instance.Status.ERROR, task_state=None, fault=fault[:2000]
            )
            operations.finish(operation, error=fault)
            audit_record(
                actor=Actor.system(f"worker {WORKER_ID}"),
                action="instance.rebuild",
                tenant_id=instance.tenant_id,
                target=instance,
                outcome="failed",
                details={"error": str(exc)[:500], "operation": str(operation.pk)},
            )
        return
    with transaction.atomic():
        Instance.objects.filter(pk=instance.pk).update(
            status=Instance.Status.ACTIVE,
            task_state=None,
            power_state=PowerState.RUNNING,
            image_id=image.pk,
            fault="",
        )
        operations.finish(operation)


# --- instance.resize / instance.revert_resize (compute.services.resize) -----------------


def _redefine(operation: Operation, instance: Instance, *, target: str) -> None:
    """Stop the guest, grow the root disk if the target flavor needs it (resize only),
    redefine the domain with the target's vCPUs and memory, start it if it was running."""
    host = instance.host
    assert host is not None
    hv = hypervisor_for(host)
    name = str(instance.pk)
    size = operation.params[target]
    was_active = bool(operation.params.get("was_active"))
    verb = "resize" if target == "new" else "revert_resize"

    def shutdown() -> None:
        if not hv.shutdown_domain(name, settings.INSTANCE_STOP_TIMEOUT_SECONDS):
            logger.info("instance %s ignored the power-off request: forced off", instance.pk)

    def grow_disk() -> None:
        pool = _pools(host)["instances"]
        wanted = int(size["disk_gb"]) * GIB
        if hv.volume_info(pool, root_volume(instance)).capacity_bytes < wanted:
            if host.domain_type == "test":
                return  # libvirt's fake hypervisor cannot resize volumes (virStorageVolResize)
            hv.resize_volume(pool, root_volume(instance), wanted)

    def define() -> None:
        port = Port.objects.get(instance=instance)
        spec = domain_spec(instance, port)
        hv.define_domain(
            dataclasses.replace(spec, vcpus=int(size["vcpus"]), memory_mb=int(size["memory_mb"]))
        )

    steps: list[tuple[str, Any]] = [
        ("shutdown", shutdown),
        ("wait_shutoff", lambda: _wait_for_power(hv, instance, PowerState.SHUTOFF, 30)),
    ]
    if target == "new":
        steps.append(("grow_disk", grow_disk))
    steps.append(("define", define))
    if was_active:
        steps += [
            ("start", lambda: hv.start_domain(name)),
            (
                "wait_running",
                lambda: _wait_for_power(
                    hv, instance, PowerState.RUNNING, settings.INSTANCE_BOOT_TIMEOUT_SECONDS
                ),
            ),
        ]
    power = PowerState.RUNNING if was_active else PowerState.SHUTOFF
    try:
        for step_name, call in steps:
            with operations.step(operation, step_name):
                call()
    except Exception as exc:
        logger.exception("%s of instance %s failed", verb, instance.pk)
        fault = f"The {verb} failed on host {host.name}: {exc}. Delete it or ask an operator."
        with transaction.atomic():
            # The capacity stays claimed at the larger size until the instance is deleted.
            Instance.objects.filter(pk=instance.pk).update(
                status=Instance.Status.ERROR, task_state=None, fault=fault[:2000]
            )
            operations.finish(operation, error=fault)
            audit_record(
                actor=Actor.system(f"worker {WORKER_ID}"),
                action=f"instance.{verb}",
                tenant_id=instance.tenant_id,
                target=instance,
                outcome="failed",
                details={"error": str(exc)[:500], "operation": str(operation.pk)},
            )
        return
    with transaction.atomic():
        if target == "new":
            Instance.objects.filter(pk=instance.pk).update(
                status=Instance.Status.VERIFY_RESIZE, task_state=None, power_state=power, fault=""
            )
        else:
            old = {key: int(size[key]) for key in ("vcpus", "memory_mb", "disk_gb")}
            locked = Instance.objects.select_for_update().get(pk=instance.pk)
            scheduler.resize_allocation(locked, **old)  # back to the old size: always fits
            Instance.objects.filter(pk=instance.pk).update(
                status=Instance.Status.ACTIVE if was_active else Instance.Status.STOPPED,
                task_state=None,
                power_state=power,
                fault="",
                flavor_id=locked.previous_flavor_id or locked.flavor_id,
                previous_flavor_id=None,
                **old,
            )
        operations.finish(operation)


def _instance_resize(operation: Operation, instance: Instance) -> None:
    _redefine(operation, instance, target="new")


def _instance_revert_resize(operation: Operation, instance: Instance) -> None:
    _redefine(operation, instance, target="old")


_HANDLERS = {
    "instance.resize": _instance_resize,
    "instance.revert_resize": _instance_revert_resize,
    "instance.create": _instance_create,
    "instance.delete": _instance_delete,
    "instance.start": _instance_start,
    "instance.stop": _instance_stop,
    "instance.reboot": _instance_reboot,
    "instance.rebuild": _instance_rebuild,
}
