"""What a host's worker does with an operation (DESIGN §2 step 4-5).

Every step is idempotent (the driver's contracts make it so), so an operation whose worker
died can simply be run again by another. A failed build removes everything it made, releases
the capacity and the address, and leaves the instance in `error` with a fault a user can
read.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compute import cloudinit, image_files, ipam, scheduler
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
from compute.services import images as image_services
from compute.services import operations
from compute.services.hosts import pool_name
from iaas.audit import Actor, audit_record
from iaas.request_context import reset_request_id, set_request_id

logger = logging.getLogger(__name__)
GIB = 1024**3
Steps = list[tuple[str, Callable[[], object]]]
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def base_volume(image_id: Any) -> str:
    return f"image-{image_id}"


def root_volume(instance: Instance) -> str:
    return f"instance-{instance.pk}-root"


def seed_volume(instance: Instance) -> str:
    return f"instance-{instance.pk}-seed"


def console_volume(instance: Instance) -> str:
    """The serial console's log, a file QEMU writes in the instances pool."""
    return f"instance-{instance.pk}-console.log"


def network_name(instance: Instance) -> str:
    return f"andr-t-{str(instance.tenant_id)[:8]}"


def bridge_name(instance: Instance) -> str:
    return f"andrbr{str(instance.tenant_id)[:8]}"  # 14 characters: Linux allows 15


def _worker_actor() -> Actor:
    return Actor.system(f"worker {WORKER_ID}")


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


def _root_disk(hv: Hypervisor, instance: Instance, image: Any, *, replace: bool = False) -> None:
    """The root disk: a qcow2 overlay on the cached image, grown to the instance's disk.
    `replace` (rebuild) wipes the old one first, so its data cannot leak."""
    host = instance.host
    assert host is not None
    pool = _pools(host)["instances"]
    if replace:
        hv.delete_volume(pool, root_volume(instance), wipe=host.domain_type != "test")
    hv.create_volume(
        VolumeSpec(
            pool=pool,
            name=root_volume(instance),
            capacity_bytes=max(instance.disk_gb * GIB, image.virtual_size_bytes or 0),
            format="qcow2",
            backing_pool=_pools(host)["images"],
            backing_volume=base_volume(image.pk),
            backing_format=image.disk_format,
        )
    )


def _seed(hv: Hypervisor, instance: Instance, port: Port, *, replace: bool = False) -> None:
    """The NoCloud seed volume: instance id, hostname, key, user data and the address the
    IPAM gave. `replace` (rebuild) writes it anew."""
    host = instance.host
    assert host is not None
    pool = _pools(host)["instances"]
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
    if replace:
        hv.delete_volume(pool, seed_volume(instance), wipe=host.domain_type != "test")
    hv.create_volume(
        VolumeSpec(pool=pool, name=seed_volume(instance), capacity_bytes=len(seed), format="raw")
    )
    if host.domain_type != "test":  # libvirt's fake hypervisor stores no data
        hv.upload_volume(pool, seed_volume(instance), io.BytesIO(seed), len(seed))


def _network(hv: Hypervisor, instance: Instance, port: Port) -> None:
    """The tenant's isolated network on this host, with the instance's static lease."""
    network = port.network
    hv.ensure_network(
        NetworkSpec(
            name=network_name(instance),
            bridge=bridge_name(instance),
            gateway_cidr=f"{ipam.gateway(network)}/{network.cidr.split('/')[1]}",
            # DHCP host names must be unique per network; tenant-chosen names need not be.
            leases=(StaticLease(mac=port.mac, ip=port.ip, hostname=f"i-{instance.pk.hex}"),),
        )
    )


def _boot_steps(hv: Hypervisor, instance: Instance, image: Any, *, replace: bool) -> Steps:
    """From a cached image to a running guest: the steps of create and rebuild."""
    port = Port.objects.select_related("network").get(instance=instance)
    host = instance.host
    assert host is not None
    return [
        ("cache_image", lambda: _cache_image(hv, host, image)),
        ("root_disk", lambda: _root_disk(hv, instance, image, replace=replace)),
        ("seed", lambda: _seed(hv, instance, port, replace=replace)),
        ("network", lambda: _network(hv, instance, port)),
        ("define", lambda: hv.define_domain(domain_spec(instance, port))),
        ("start", lambda: hv.start_domain(str(instance.pk))),  # running already: a no-op
        ("wait_running", lambda: _wait_running(hv, instance)),
    ]


def _run_steps(operation: Operation, steps: Steps) -> None:
    for name, call in steps:
        with operations.step(operation, name):
            call()


def _fail(
    operation: Operation, instance: Instance, verb: str, exc: Exception, **instance_fields: Any
) -> None:
    """A step failed: tell the tenant why (the fault), free the instance's task, fail the
    operation and audit it; `instance_fields` are further changes (e.g. status=error)."""
    host = instance.host
    assert host is not None
    logger.exception("%s of instance %s failed", verb, instance.pk)
    fault = f"The {verb} failed on host {host.name}: {exc}"
    with transaction.atomic():
        Instance.objects.filter(pk=instance.pk).update(
            task_state=None, fault=fault[:2000], **instance_fields
        )
        operations.finish(operation, error=fault)
        audit_record(
            actor=_worker_actor(),
            action=f"instance.{verb}",
            tenant_id=instance.tenant_id,
            target=instance,
            outcome="failed",
            details={"error": str(exc)[:500], "operation": str(operation.pk)},
        )


def _succeed(operation: Operation, instance: Instance, **instance_fields: Any) -> None:
    with transaction.atomic():
        Instance.objects.filter(pk=instance.pk).update(task_state=None, fault="", **instance_fields)
        operations.finish(operation)


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
        console_log=f"{host.storage_root}/instances/{console_volume(instance)}",
    )


def _remove_artefacts(hv: Hypervisor, instance: Instance) -> None:
    """Remove the domain, its disks and its console log (the guest's output is the
    tenant's); every call is a no-op when the thing is gone."""
    host = instance.host
    assert host is not None
    pools = _pools(host)
    hv.destroy_domain(str(instance.pk))
    hv.undefine_domain(str(instance.pk))
    for volume in (root_volume(instance), seed_volume(instance), console_volume(instance)):
        hv.delete_volume(pools["instances"], volume, wipe=host.domain_type != "test")


def _release(instance: Instance) -> None:
    scheduler.release_allocation(instance)
    Port.objects.filter(instance=instance).delete()


def _instance_create(operation: Operation, instance: Instance) -> None:
    from compute.models import Image

    host = instance.host
    assert host is not None
    hv = hypervisor_for(host)
    try:
        image = Image.objects.get(pk=instance.image_id)
        _run_steps(operation, _boot_steps(hv, instance, image, replace=False))
    except Exception as exc:
        # Nothing half-built stays behind: remove what was made, free capacity and address.
        cleanup = ""
        try:
            _remove_artefacts(hv, instance)
        except DriverError as cleanup_exc:
            cleanup = f" (cleanup incomplete, an operator is told: {cleanup_exc})"
        with transaction.atomic():
            _release(instance)
            _fail(
                operation,
                instance,
                "build",
                DriverError(f"{exc}{cleanup}"),
                status=Instance.Status.ERROR,
            )
        return
    _succeed(operation, instance, status=Instance.Status.ACTIVE, power_state=PowerState.RUNNING)


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


def _wait_running(hv: Hypervisor, instance: Instance) -> None:
    _wait_for_power(hv, instance, PowerState.RUNNING, settings.INSTANCE_BOOT_TIMEOUT_SECONDS)


def _shutdown_steps(hv: Hypervisor, instance: Instance) -> Steps:
    """Graceful (ACPI) power-off, forced after the deadline; already off: a no-op."""

    def shutdown() -> None:
        if not hv.shutdown_domain(str(instance.pk), settings.INSTANCE_STOP_TIMEOUT_SECONDS):
            logger.info("instance %s ignored the power-off request: forced off", instance.pk)

    return [
        ("shutdown", shutdown),
        ("wait_shutoff", lambda: _wait_for_power(hv, instance, PowerState.SHUTOFF, 30)),
    ]


def _run_verb(
    operation: Operation, instance: Instance, verb: str, steps: Steps, **done: Any
) -> None:
    """Run a lifecycle verb's steps; on success apply `done` (status, power state), on a
    failure keep the previous status and tell the tenant why (the fault)."""
    try:
        _run_steps(operation, steps)
    except Exception as exc:
        _fail(operation, instance, verb, exc)
        return
    _succeed(operation, instance, **done)


def _instance_start(operation: Operation, instance: Instance) -> None:
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    steps: Steps = [
        ("start", lambda: hv.start_domain(str(instance.pk))),  # already running: a no-op
        ("wait_running", lambda: _wait_running(hv, instance)),
    ]
    _run_verb(operation, instance, "start", steps,
              status=Instance.Status.ACTIVE, power_state=PowerState.RUNNING)  # fmt: skip


def _instance_stop(operation: Operation, instance: Instance) -> None:
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    _run_verb(operation, instance, "stop", _shutdown_steps(hv, instance),
              status=Instance.Status.STOPPED, power_state=PowerState.SHUTOFF)  # fmt: skip


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

    steps: Steps = [
        ("reboot_hard" if hard else "reboot_soft", reboot),
        ("wait_running", lambda: _wait_running(hv, instance)),
    ]
    _run_verb(operation, instance, "reboot", steps,
              status=Instance.Status.ACTIVE, power_state=PowerState.RUNNING)  # fmt: skip


# --- instance.rebuild ---------------------------------------------------------------------


def _instance_rebuild(operation: Operation, instance: Instance) -> None:
    """Power off, wipe the root disk, lay a fresh overlay on the new image, rewrite the
    seed, redefine (same name, UUID and MAC) and boot. A failure leaves the instance in
    `error` with a fault; it keeps its allocation and address (it still exists)."""
    from compute.models import Image

    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    try:
        image = Image.objects.get(pk=operation.params["image"])
        steps: Steps = [("destroy", lambda: hv.destroy_domain(str(instance.pk)))]
        _run_steps(operation, steps + _boot_steps(hv, instance, image, replace=True))
    except Exception as exc:
        _fail(operation, instance, "rebuild", exc, status=Instance.Status.ERROR)
        return
    _succeed(operation, instance, status=Instance.Status.ACTIVE,
             power_state=PowerState.RUNNING, image_id=image.pk)  # fmt: skip


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

    def grow_disk() -> None:
        pool = _pools(host)["instances"]
        wanted = int(size["disk_gb"]) * GIB
        if hv.volume_info(pool, root_volume(instance)).capacity_bytes < wanted:
            if host.domain_type == "test":
                # libvirt's fake stores no data and cannot download: its disk is empty.
                return  # libvirt's fake hypervisor cannot resize volumes (virStorageVolResize)
            hv.resize_volume(pool, root_volume(instance), wanted)

    def define() -> None:
        port = Port.objects.get(instance=instance)
        spec = domain_spec(instance, port)
        hv.define_domain(
            dataclasses.replace(spec, vcpus=int(size["vcpus"]), memory_mb=int(size["memory_mb"]))
        )

    steps = _shutdown_steps(hv, instance)
    if target == "new":
        steps.append(("grow_disk", grow_disk))
    steps.append(("define", define))
    if was_active:
        steps += [
            ("start", lambda: hv.start_domain(name)),
            ("wait_running", lambda: _wait_running(hv, instance)),
        ]
    power = PowerState.RUNNING if was_active else PowerState.SHUTOFF
    try:
        _run_steps(operation, steps)
    except Exception as exc:
        if target == "new" and _roll_back_resize(hv, operation, instance, exc):
            return
        # Nothing to go back to (a failed revert, or a host that cannot even redefine the
        # old size): error; the capacity stays claimed at the larger size until deleted.
        _fail(operation, instance, verb, exc, status=Instance.Status.ERROR)
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


def _roll_back_resize(
    hv: Hypervisor, operation: Operation, instance: Instance, exc: Exception
) -> bool:
    """A resize failed: put the guest back on its old size (forced off, redefined, booted if
    it was running), release the extra capacity and tell the tenant why, as a revert would.
    A root disk grown meanwhile stays grown (it cannot shrink). False when the old size
    cannot be restored either (the caller then puts the instance in error)."""
    host = instance.host
    assert host is not None
    name = str(instance.pk)
    old = operation.params["old"]
    was_active = bool(operation.params.get("was_active"))
    try:
        hv.destroy_domain(name)  # already off: a no-op
        port = Port.objects.get(instance=instance)
        spec = domain_spec(instance, port)
        hv.define_domain(
            dataclasses.replace(spec, vcpus=int(old["vcpus"]), memory_mb=int(old["memory_mb"]))
        )
        if was_active:
            hv.start_domain(name)
            _wait_running(hv, instance)
    except Exception:
        logger.exception("instance %s: the failed resize could not be rolled back", name)
        return False
    logger.warning("resize of instance %s failed and was rolled back: %s", name, exc)
    fault = (
        f"The resize to flavor {operation.params['new']['flavor']} failed on host {host.name}: "
        f"{exc}. The instance is back on flavor {old['flavor']}."
    )
    size = {key: int(old[key]) for key in ("vcpus", "memory_mb", "disk_gb")}
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance.pk)
        scheduler.resize_allocation(locked, **size)  # back to the old size: always fits
        Instance.objects.filter(pk=instance.pk).update(
            status=Instance.Status.ACTIVE if was_active else Instance.Status.STOPPED,
            task_state=None,
            power_state=PowerState.RUNNING if was_active else PowerState.SHUTOFF,
            fault=fault[:2000],
            flavor_id=locked.previous_flavor_id or locked.flavor_id,
            previous_flavor_id=None,
            **size,
        )
        operations.finish(operation, error=fault)
        audit_record(
            actor=_worker_actor(),
            action="instance.resize",
            tenant_id=instance.tenant_id,
            target=instance,
            outcome="failed",
            details={"error": str(exc)[:500], "operation": str(operation.pk), "rolled_back": True},
        )
    return True


def _instance_resize(operation: Operation, instance: Instance) -> None:
    _redefine(operation, instance, target="new")


def _instance_revert_resize(operation: Operation, instance: Instance) -> None:
    _redefine(operation, instance, target="old")


# --- instance.snapshot --------------------------------------------------------------------


def snapshot_volume(image_id: Any) -> str:
    """The flattened copy of a root disk on its host (instances pool) while it is stored."""
    return f"snapshot-{image_id}"


def _image_active(image: Any) -> bool:
    image.refresh_from_db(fields=["status"])
    return bool(image.status == image.Status.ACTIVE)


def _copy_root_disk(hv: Hypervisor, instance: Instance, image: Any) -> None:
    """A standalone copy of the root disk (its overlay flattened onto the base image), in
    the instances pool beside it. A copy left by an earlier run may be incomplete: it is
    removed and made again. The image already active (a run after the store step): nothing
    to do."""
    if _image_active(image):
        return
    host = instance.host
    assert host is not None
    pools = _pools(host)
    name = snapshot_volume(image.pk)
    hv.delete_volume(pools["instances"], name, wipe=host.domain_type != "test")
    source = hv.volume_info(pools["instances"], root_volume(instance))
    spec = VolumeSpec(
        pool=pools["instances"], name=name, capacity_bytes=source.capacity_bytes, format="qcow2"
    )
    hv.copy_volume(pools["instances"], root_volume(instance), spec)


def _store_snapshot(hv: Hypervisor, instance: Instance, image: Any) -> None:
    """Stream the copy from the host into the image store, hashing it on the way, and make
    the image active through the same inspection as an upload (it must stand alone)."""
    if _image_active(image):
        return
    host = instance.host
    assert host is not None
    limit = settings.IMAGE_MAX_BYTES
    store = Path(settings.IMAGE_STORE_DIR)
    try:
        with image_files.Receiver(directory=store, prefix=f".{image.pk}.", max_bytes=limit) as rx:
            copy = snapshot_volume(image.pk)
            if host.domain_type == "test":
                # libvirt's fake stores no data and cannot download: its disk is empty.
                size = hv.volume_info(_pools(host)["instances"], copy).capacity_bytes
                rx.write(image_files.empty_qcow2(size))
            else:
                hv.download_volume(_pools(host)["instances"], copy, rx.write)
            received = rx.finish()
    except image_files.TooLarge as exc:
        raise DriverError(
            f"the disk's copy is larger than the image size limit ({limit} bytes)"
        ) from exc
    image_services.image_save_snapshot(actor=_worker_actor(), image=image, received=received)


def _power_after_failure(hv: Hypervisor, instance: Instance, was_active: bool) -> dict[str, Any]:
    """After a failed snapshot: boot a guest that was running (best effort) and say what
    the instance is now; nothing when the host cannot tell (the reconciler will)."""
    name = str(instance.pk)
    try:
        if was_active and hv.domain_info(name).power_state != PowerState.RUNNING:
            hv.start_domain(name)
            _wait_running(hv, instance)
    except Exception:  # the snapshot's own error is the one reported
        logger.exception("instance %s could not be booted again after its snapshot", name)
    try:
        power = hv.domain_info(name).power_state
    except DriverError:
        return {}
    running = power == PowerState.RUNNING
    return {
        "status": Instance.Status.ACTIVE if running else Instance.Status.STOPPED,
        "power_state": power,
    }


def _instance_snapshot(operation: Operation, instance: Instance) -> None:
    """Power a running guest off cleanly, copy its root disk into a standalone image on the
    host, stream that into the image store (the image becomes active), remove the copy and
    boot the guest again. A failure removes the copy, puts the image in `error` with the
    reason and boots the guest if it was running."""
    from compute.models import Image

    host = instance.host
    assert host is not None
    hv = hypervisor_for(host)
    pools = _pools(host)
    image = Image.objects.get(pk=operation.params["image"])
    was_active = bool(operation.params.get("was_active"))
    wipe = host.domain_type != "test"
    name = str(instance.pk)
    steps = _shutdown_steps(hv, instance) if was_active else []
    steps += [
        ("copy_disk", lambda: _copy_root_disk(hv, instance, image)),
        ("store_image", lambda: _store_snapshot(hv, instance, image)),
        (
            "remove_copy",
            lambda: hv.delete_volume(pools["instances"], snapshot_volume(image.pk), wipe=wipe),
        ),
    ]
    if was_active:
        steps += [
            ("start", lambda: hv.start_domain(name)),
            ("wait_running", lambda: _wait_running(hv, instance)),
        ]
    try:
        _run_steps(operation, steps)
    except Exception as exc:
        try:
            hv.delete_volume(pools["instances"], snapshot_volume(image.pk), wipe=wipe)
        except DriverError:
            logger.exception("the copy of snapshot %s could not be removed", image.pk)
        image_services.image_snapshot_failed(
            actor=_worker_actor(), image_id=image.pk, message=f"The snapshot failed: {exc}"
        )
        _fail(
            operation, instance, "snapshot", exc, **_power_after_failure(hv, instance, was_active)
        )
        return
    _succeed(operation, instance)


_HANDLERS = {
    "instance.resize": _instance_resize,
    "instance.revert_resize": _instance_revert_resize,
    "instance.create": _instance_create,
    "instance.delete": _instance_delete,
    "instance.start": _instance_start,
    "instance.stop": _instance_stop,
    "instance.reboot": _instance_reboot,
    "instance.rebuild": _instance_rebuild,
    "instance.snapshot": _instance_snapshot,
}
