"""The building blocks every worker handler shares: names of what an instance owns on its
host, the steps from a cached image to a running guest, power waits, and the one way a step
failure or success is recorded (fault, operation, audit).

Every step is idempotent (the driver's contracts make it so), so an operation whose worker
died can simply be run again by another.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction

from compute import cloudinit
from compute.models import Host, Instance, Operation, Port, StoragePool
from compute.services import ipam, operations, scheduler
from compute.services.hosts import pool_name
from hypervisor.base import (
    DiskSpec,
    DomainSpec,
    DriverError,
    Hypervisor,
    NetworkSpec,
    NicSpec,
    NotFound,
    PowerState,
    StaticLease,
    StorageVolumeSpec,
)
from iaas.audit import Actor, audit_record

logger = logging.getLogger(__name__)

GIB = 1024**3
Steps = list[tuple[str, Callable[[], object]]]


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


def stores_no_data(host: Host) -> bool:
    """libvirt's fake hypervisor (domain type `test`) keeps no volume data: nothing is
    transferred to or from it, nor grown. (Its driver skips wipes by itself.)"""
    return host.domain_type == "test"


def worker_id() -> str:
    """Who holds a lease: host and process. Computed per call, never at import: Celery's
    prefork children import this module in their parent, before they fork."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_actor() -> Actor:
    return Actor.system(f"worker {worker_id()}")


def pool_names(host: Host) -> dict[str, str]:
    return {role: pool_name(host.name, role) for role in StoragePool.Role.values}


def cache_image(hv: Hypervisor, host: Host, image: Any) -> None:
    """The base image on the host, keyed by image id (whose content never changes)."""
    pools = pool_names(host)
    name = base_volume(image.pk)
    try:
        info = hv.storage_volume_info(pools["images"], name)
        if info.capacity_bytes >= (image.size_bytes or 0) and not stores_no_data(host):
            return
    except NotFound:
        pass
    hv.create_storage_volume(
        StorageVolumeSpec(
            pool=pools["images"],
            name=name,
            capacity_bytes=max(image.size_bytes or 0, 1),
            format=image.disk_format,
        )
    )
    if stores_no_data(host):
        return  # nothing to transfer
    from compute.services.images import image_file_path

    with open(image_file_path(image), "rb") as source:
        hv.upload_storage_volume(pools["images"], name, source, image.size_bytes or 0)


def _root_disk(hv: Hypervisor, instance: Instance, image: Any, *, replace: bool = False) -> None:
    """The root disk: a qcow2 overlay on the cached image, grown to the instance's disk.
    `replace` (rebuild) wipes the old one first, so its data cannot leak."""
    host = instance.host
    assert host is not None
    pool = pool_names(host)["instances"]
    if replace:
        hv.delete_storage_volume(pool, root_volume(instance))
    hv.create_storage_volume(
        StorageVolumeSpec(
            pool=pool,
            name=root_volume(instance),
            capacity_bytes=max(instance.disk_gb * GIB, image.virtual_size_bytes or 0),
            format="qcow2",
            backing_pool=pool_names(host)["images"],
            backing_volume=base_volume(image.pk),
            backing_format=image.disk_format,
        )
    )


def _seed(hv: Hypervisor, instance: Instance, port: Port, *, replace: bool = False) -> None:
    """The NoCloud seed volume: instance id, hostname, key, user data and the address the
    IPAM gave. `replace` (rebuild) writes it anew."""
    host = instance.host
    assert host is not None
    pool = pool_names(host)["instances"]
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
        hv.delete_storage_volume(pool, seed_volume(instance))
    hv.create_storage_volume(
        StorageVolumeSpec(
            pool=pool, name=seed_volume(instance), capacity_bytes=len(seed), format="raw"
        )
    )
    if not stores_no_data(host):
        hv.upload_storage_volume(pool, seed_volume(instance), io.BytesIO(seed), len(seed))


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


def boot_steps(hv: Hypervisor, instance: Instance, image: Any, *, replace: bool) -> Steps:
    """From a cached image to a running guest: the steps of create and rebuild."""
    port = Port.objects.select_related("network").get(instance=instance)
    host = instance.host
    assert host is not None
    return [
        ("cache_image", lambda: cache_image(hv, host, image)),
        ("root_disk", lambda: _root_disk(hv, instance, image, replace=replace)),
        ("seed", lambda: _seed(hv, instance, port, replace=replace)),
        ("network", lambda: _network(hv, instance, port)),
        ("define", lambda: hv.define_domain(domain_spec(instance, port))),
        ("start", lambda: hv.start_domain(str(instance.pk))),  # running already: a no-op
        ("wait_running", lambda: wait_running(hv, instance)),
    ]


def run_steps(operation: Operation, steps: Steps) -> None:
    for name, call in steps:
        with operations.step(operation, name):
            call()


def fail(
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
            actor=worker_actor(),
            action=f"instance.{verb}",
            tenant_id=instance.tenant_id,
            target=instance,
            outcome="failed",
            details={"error": str(exc)[:500], "operation": str(operation.pk)},
        )


def succeed(operation: Operation, instance: Instance, **instance_fields: Any) -> None:
    with transaction.atomic():
        Instance.objects.filter(pk=instance.pk).update(task_state=None, fault="", **instance_fields)
        operations.finish(operation)


def domain_spec(instance: Instance, port: Port) -> DomainSpec:
    host = instance.host
    assert host is not None
    pools = pool_names(host)
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


def remove_artefacts(hv: Hypervisor, instance: Instance) -> None:
    """Remove the domain, its disks and its console log (the guest's output is the
    tenant's); every call is a no-op when the thing is gone."""
    host = instance.host
    assert host is not None
    pools = pool_names(host)
    hv.destroy_domain(str(instance.pk))
    hv.undefine_domain(str(instance.pk))
    for volume in (root_volume(instance), seed_volume(instance), console_volume(instance)):
        hv.delete_storage_volume(pools["instances"], volume)


def release_capacity(instance: Instance) -> None:
    scheduler.release_allocation(instance)
    Port.objects.filter(instance=instance).delete()


def wait_for_power(hv: Hypervisor, instance: Instance, wanted: PowerState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while hv.domain_info(str(instance.pk)).power_state != wanted:
        if time.monotonic() > deadline:
            raise DriverError(f"the instance did not reach {wanted} within {timeout:g} s")
        time.sleep(0.5)


def wait_running(hv: Hypervisor, instance: Instance) -> None:
    wait_for_power(hv, instance, PowerState.RUNNING, settings.INSTANCE_BOOT_TIMEOUT_SECONDS)


def shutdown_steps(hv: Hypervisor, instance: Instance) -> Steps:
    """Graceful (ACPI) power-off, forced after the deadline; already off: a no-op."""

    def shutdown() -> None:
        if not hv.shutdown_domain(str(instance.pk), settings.INSTANCE_STOP_TIMEOUT_SECONDS):
            logger.info("instance %s ignored the power-off request: forced off", instance.pk)

    return [
        ("shutdown", shutdown),
        ("wait_shutoff", lambda: wait_for_power(hv, instance, PowerState.SHUTOFF, 30)),
    ]


def run_verb(
    operation: Operation, instance: Instance, verb: str, steps: Steps, **done: Any
) -> None:
    """Run a lifecycle verb's steps; on success apply `done` (status, power state), on a
    failure keep the previous status and tell the tenant why (the fault)."""
    try:
        run_steps(operation, steps)
    except Exception as exc:
        fail(operation, instance, verb, exc)
        return
    succeed(operation, instance, **done)
