"""The building blocks every instance handler shares: the steps from a cached image to a
running guest, power waits, and the removal of what an instance owns on its host. Names of
host objects come from hosts.naming; a step's failure or success is recorded through
operations.services.outcomes.

Every step is idempotent (the driver's contracts make it so), so an operation whose worker
died can simply be run again by another.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings

from compute import cloudinit
from compute.models import Instance
from compute.services import scheduler
from hosts import naming
from hosts.ceph import ensure_ceph_pool
from hosts.models import Host, StoragePool
from hypervisor.base import (
    DiskSpec,
    DomainSpec,
    DriverError,
    Hypervisor,
    PowerState,
    StorageVolumeSpec,
)
from images.host_cache import cache_image, stores_no_data
from images.models import Image
from network import host_specs
from network.models import Port
from network.selectors import device_ports
from network.services.devices import device_ports_release
from operations.models import Operation
from operations.services.outcomes import fail, succeed
from operations.services.runs import step
from volumes.crypto import is_encrypted, secret_uuid
from volumes.models import Volume, VolumeAttachment
from volumes.selectors import attachments_of, boot_attachment
from volumes.states import VolumeStatus
from volumes.worker.secrets import define_volume_secret

logger = logging.getLogger(__name__)

GIB = 1024**3
Steps = list[tuple[str, Callable[[], object]]]


def pool_names(host: Host) -> dict[str, str]:
    return {role: naming.storage_pool(host.name, role) for role in StoragePool.Role.values}


def _root_disk(hv: Hypervisor, instance: Instance, image: Image, *, replace: bool = False) -> None:
    """The root disk: a qcow2 overlay on the cached image, of exactly the instance's disk.
    `replace` (rebuild) wipes the old one first, so its data cannot leak."""
    host = instance.host
    assert host is not None
    pool = pool_names(host)["instances"]
    if replace:
        hv.delete_storage_volume(pool, naming.root_disk(instance.pk))
    hv.create_storage_volume(
        StorageVolumeSpec(
            pool=pool,
            name=naming.root_disk(instance.pk),
            # Exactly the flavor's disk, what quota and placement counted (an image larger
            # than that is refused when the instance is created or rebuilt).
            capacity_bytes=instance.disk_gb * GIB,
            format="qcow2",
            backing_pool=pool_names(host)["images"],
            backing_volume=naming.cached_image(image.pk),
            backing_format=image.disk_format,
        )
    )


def _seed(hv: Hypervisor, instance: Instance, ports: list[Port], *, replace: bool = False) -> None:
    """The NoCloud seed volume: instance id, hostname, key, user data and each NIC's address
    as the IPAM gave it. `replace` (rebuild) writes it anew."""
    host = instance.host
    assert host is not None
    pool = pool_names(host)["instances"]
    seed = cloudinit.build_iso(
        cloudinit.Seed(
            instance_id=str(instance.pk),
            hostname=instance.name,
            interfaces=host_specs.guest_interfaces(ports),
            user_data=instance.user_data,
            ssh_public_keys=(instance.ssh_public_key,) if instance.ssh_public_key else (),
        )
    )
    if replace:
        hv.delete_storage_volume(pool, naming.seed(instance.pk))
    hv.create_storage_volume(
        StorageVolumeSpec(
            pool=pool, name=naming.seed(instance.pk), capacity_bytes=len(seed), format="raw"
        )
    )
    if not stores_no_data(host):
        hv.upload_storage_volume(pool, naming.seed(instance.pk), io.BytesIO(seed), len(seed))


#: How long a build waits for its new boot volume (copied from the image by the volume's
#: own operation, queued first on the same host) before it fails.
BOOT_VOLUME_TIMEOUT_SECONDS = 1800.0


def wait_boot_volume(instance: Instance, timeout: float = BOOT_VOLUME_TIMEOUT_SECONDS) -> None:
    """The boot volume ready to boot from: made (`in-use`: its create ended with its
    attachment) or an existing one being attached (`attaching`). One that failed, or still
    not made after `timeout`: DriverError (the build fails with that fault)."""
    attachment = boot_attachment(instance.pk)
    if attachment is None:
        raise DriverError("the instance's boot volume is gone")
    deadline = time.monotonic() + timeout
    while True:
        volume = Volume.objects.only("status", "fault").get(pk=attachment.volume_id)
        if volume.status in (VolumeStatus.IN_USE, VolumeStatus.ATTACHING):
            return
        if volume.status != VolumeStatus.CREATING:
            raise DriverError(f"the boot volume is {volume.status}: {volume.fault}".rstrip(": "))
        if time.monotonic() > deadline:
            raise DriverError(f"the boot volume was not made within {timeout:g} s")
        time.sleep(0.5)


def boot_steps(hv: Hypervisor, instance: Instance, image: Image, *, replace: bool) -> Steps:
    """From a cached image to a running guest: the steps of create and rebuild. An instance
    booting from a volume has no root disk in the instances pool: its volume is waited for."""
    ports = device_ports(instance.pk)
    host = instance.host
    assert host is not None
    if boot_attachment(instance.pk) is not None:
        root: Steps = [("boot_volume", lambda: wait_boot_volume(instance))]
    else:
        root = [
            ("cache_image", lambda: cache_image(hv, host, image)),
            ("root_disk", lambda: _root_disk(hv, instance, image, replace=replace)),
        ]
    return [
        *root,
        ("seed", lambda: _seed(hv, instance, ports, replace=replace)),
        ("network", lambda: ensure_network(hv, ports)),
        ("define", lambda: hv.define_domain(domain_spec(instance, ports))),
        ("start", lambda: start_domain(hv, instance)),  # running already: a no-op
        ("wait_running", lambda: wait_running(hv, instance)),
    ]


def volume_secrets_ensure(hv: Hypervisor, instance: Instance) -> None:
    """The secrets of the instance's attached encrypted volumes, and the Ceph clusters of its
    rbd volumes (key and pool), defined on its host (again): secrets are ephemeral, so a
    libvirtd restart forgets them, and QEMU needs them to start."""
    assert instance.host is not None
    for attachment in attachments_of(instance.pk):
        define_volume_secret(hv, attachment.volume)
        if attachment.volume.ceph_cluster is not None:
            ensure_ceph_pool(hv, instance.host, attachment.volume.ceph_cluster)


def start_domain(hv: Hypervisor, instance: Instance) -> None:
    """Start the instance's domain (running already: a no-op), its volumes' secrets first."""
    volume_secrets_ensure(hv, instance)
    hv.start_domain(naming.domain(instance.pk))


def run_steps(operation: Operation, steps: Steps) -> None:
    for name, call in steps:
        with step(operation, name):
            call()


def ensure_network(hv: Hypervisor, ports: list[Port]) -> None:
    """The instance's ports ready on the host: with OVN, written to the NB by a control
    worker (waited for, bounded); without, the tenant's libvirt network with the leases."""
    if not host_specs.ovn_enabled():
        for port in ports:
            hv.ensure_network(host_specs.network_spec(port))
        return
    deadline = time.monotonic() + settings.PORT_REALISE_TIMEOUT_SECONDS
    while True:
        done, fault = host_specs.realisation(ports)
        if done:
            return
        if fault:
            raise DriverError(f"the instance's network is not ready: {fault}")
        if time.monotonic() > deadline:
            raise DriverError(
                "the instance's network ports were not configured in "
                f"{settings.PORT_REALISE_TIMEOUT_SECONDS} s (the network service is slow or "
                "down); try again later"
            )
        time.sleep(0.2)


def domain_spec(instance: Instance, ports: list[Port]) -> DomainSpec:
    """The instance's domain: its root disk (its boot volume at vda, first: it boots from
    it), its seed, the volumes attached to it (so a redefinition, by a rebuild or a resize,
    keeps them) and its NICs."""
    host = instance.host
    assert host is not None
    pools = pool_names(host)
    attached = attachments_of(instance.pk)
    boot = [a for a in attached if a.device == "vda"]
    root = (
        volume_disk(boot[0])
        if boot
        else DiskSpec(pool=pools["instances"], volume=naming.root_disk(instance.pk), target="vda")
    )
    return DomainSpec(
        name=naming.domain(instance.pk),
        title=instance.name,
        tenant_id=str(instance.tenant_id),
        instance_id=str(instance.pk),
        vcpus=instance.vcpus,
        memory_mb=instance.memory_mb,
        disks=(
            root,
            DiskSpec(
                pool=pools["instances"],
                volume=naming.seed(instance.pk),
                target="sda",
                device="cdrom",
                bus="virtio",
                format="raw",
                readonly=True,
            ),
            *(volume_disk(attachment) for attachment in attached if attachment.device != "vda"),
        ),
        nics=tuple(host_specs.nic_spec(port, host) for port in ports),
        domain_type=host.domain_type,
        console_log=f"{host.storage_root}/instances/{naming.console_log(instance.pk)}",
    )


def volume_disk(attachment: VolumeAttachment) -> DiskSpec:
    """The disk of an attached volume: its qcow2 file in the volumes pool of its host; an
    encrypted one names its secret (defined on the host while it is attached); an rbd one
    is its raw RBD image in its cluster's pool on the host (a network disk: the driver)."""
    if attachment.volume.ceph_cluster_id is not None:
        return DiskSpec(
            pool=naming.ceph_pool(attachment.volume.ceph_cluster_id),
            volume=naming.volume(attachment.volume_id),
            target=attachment.device,
            format="raw",
        )
    return DiskSpec(
        pool=pool_names(attachment.host)["volumes"],
        volume=naming.volume(attachment.volume_id),
        target=attachment.device,
        encryption_secret=(
            secret_uuid(attachment.volume_id) if is_encrypted(attachment.volume) else None
        ),
    )


def remove_artefacts(hv: Hypervisor, instance: Instance) -> None:
    """Remove the domain, its disks and its console log with its rotated files (the guest's
    output is the tenant's); every call is a no-op when the thing is gone."""
    host = instance.host
    assert host is not None
    hv.destroy_domain(naming.domain(instance.pk))
    hv.undefine_domain(naming.domain(instance.pk))
    remove_disks(hv, host, instance.pk)


def remove_disks(hv: Hypervisor, host: Host, instance_id: uuid.UUID) -> None:
    """Erase the instance's root disk, seed and console log (with its rotated files) from
    the host's instances pool; each a no-op when gone."""
    pool = pool_names(host)["instances"]
    for volume in (
        naming.root_disk(instance_id),
        naming.seed(instance_id),
        naming.console_log(instance_id),
    ):
        hv.delete_storage_volume(pool, volume)
    # The console log's rotated files (virtlogd's .0, .1, …) hold the tenant's output too
    # (review M12): every volume the naming module reads as this instance's console log.
    for info in hv.list_storage_volumes(pool):
        parsed = naming.parse_volume(info.name)
        if parsed == naming.VolumeName(naming.VolumeKind.CONSOLE_LOG, uuid.UUID(str(instance_id))):
            hv.delete_storage_volume(pool, info.name)


def release_capacity(instance: Instance) -> None:
    """Free the instance's claim on its host and its addresses (it is gone, or never was)."""
    scheduler.release_allocation(instance)
    device_ports_release(instance.pk)


def wait_for_power(hv: Hypervisor, instance: Instance, wanted: PowerState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while hv.domain_info(naming.domain(instance.pk)).power_state != wanted:
        if time.monotonic() > deadline:
            raise DriverError(f"the instance did not reach {wanted} within {timeout:g} s")
        time.sleep(0.5)


def wait_running(hv: Hypervisor, instance: Instance) -> None:
    wait_for_power(hv, instance, PowerState.RUNNING, settings.INSTANCE_BOOT_TIMEOUT_SECONDS)


def shutdown_steps(hv: Hypervisor, instance: Instance) -> Steps:
    """Graceful (ACPI) power-off, forced after the deadline; already off: a no-op."""

    def shutdown() -> None:
        if not hv.shutdown_domain(
            naming.domain(instance.pk), settings.INSTANCE_STOP_TIMEOUT_SECONDS
        ):
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
    succeed(operation, **done)
