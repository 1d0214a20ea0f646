"""Worker handlers of volume.create (empty, from an image, from a volume snapshot),
volume.extend and volume.delete (attaching is an instance operation: compute.worker.volumes).
On a directory backend the volume is the qcow2 file `volume-<id>` (hosts.naming) in its
host's volumes pool; on rbd, the raw RBD image `volume-<id>` in its Ceph cluster, reached
from the host whose queue runs the operation (any enabled host of the zone, or the host of
the instance it is attached to: volumes.services.volumes), through the cluster's rbd pool
there (hosts.ceph; its key defined again each time, the secret being ephemeral).

Every step is idempotent, so an operation whose worker died can simply be run again: the
pool is ensured, an empty volume is created "at least this size" (an existing one is kept),
a copy from an image is made anew (a copy cannot be known complete: what an interrupted run
left is erased first), growing to a size it has is a no-op, deleting a missing volume is a
no-op. A failed create erases what it made; the volume goes to `error` with a fault the
tenant can read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from django.db import transaction

from hosts import naming
from hosts.ceph import cluster_key, ensure_ceph_pool
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from hypervisor.base import DriverError, Hypervisor, NotFound, PoolSpec, StorageVolumeSpec
from iaas.audit import audit_record
from images.host_cache import cache_image, images_pool, stores_no_data
from images.models import Image
from operations.models import Operation
from operations.services.outcomes import fail, succeed
from operations.services.runs import step, worker_actor
from volumes.crypto import is_encrypted, secret_uuid
from volumes.models import Volume, VolumeAttachment
from volumes.selectors import active_attachment
from volumes.states import VolumeStatus
from volumes.worker.secrets import forget_secret, volume_secret

logger = logging.getLogger(__name__)

GIB = 1024**3
Steps = list[tuple[str, Callable[[], object]]]
#: How a directory volume's storage is erased (DESIGN §8; hypervisor/libvirt/storage.py).
ERASED_BY_WIPE = "every byte of the file overwritten in place with zeros and synced, then deleted"
ERASED_BY_NOTHING = "deleted; nothing to overwrite (libvirt's test driver keeps no data)"
#: How an RBD image's storage is erased (hypervisor/libvirt/storage.py: removing an image
#: deletes every RADOS object of it).
ERASED_BY_RBD_REMOVE = "RBD image removed: Ceph deleted every RADOS object holding its data"


def volumes_pool(host: Host) -> str:
    return naming.storage_pool(host.name, "volumes")


def acting_host(operation: Operation, volume: Volume) -> Host:
    """The host this operation's worker acts from: a directory volume's own; for an rbd
    volume, the operation's (whose queue runs it)."""
    if volume.host is not None:
        return volume.host
    return Host.objects.select_related("zone").get(name=operation.host_name)


def is_rbd(volume: Volume) -> bool:
    return volume.ceph_cluster_id is not None


def _run(operation: Operation, steps: Steps) -> None:
    for name, call in steps:
        with step(operation, name):
            call()


def ensure_pool(hv: Hypervisor, host: Host, volume: Volume | None = None) -> None:
    """The volumes pool onboarding made: ensured again (a no-op when it is there), so a host
    onboarded before volumes existed, or whose pool was lost, gets it back. For an rbd
    volume, its cluster's rbd pool on `host` instead, its key defined first."""
    if volume is not None and volume.ceph_cluster is not None:
        ensure_ceph_pool(hv, host, volume.ceph_cluster)
        return
    hv.ensure_pool(PoolSpec(name=volumes_pool(host), path=f"{host.storage_root}/volumes"))


def _spec(volume: Volume, host: Host) -> StorageVolumeSpec:
    if volume.ceph_cluster_id is not None:
        return StorageVolumeSpec(
            pool=naming.ceph_pool(volume.ceph_cluster_id),
            name=naming.volume(volume.pk),
            capacity_bytes=volume.size_gb * GIB,
            format="raw",  # an RBD image is raw (thin: Ceph allocates what is written)
        )
    return StorageVolumeSpec(
        pool=volumes_pool(host),
        name=naming.volume(volume.pk),
        capacity_bytes=volume.size_gb * GIB,
        format="qcow2",
        encryption_secret=secret_uuid(volume.pk) if is_encrypted(volume) else None,
    )


def _create_empty(hv: Hypervisor, host: Host, volume: Volume) -> None:
    with volume_secret(hv, volume):  # libvirt writes the LUKS header with the passphrase
        hv.create_storage_volume(_spec(volume, host))


def _copy_from(hv: Hypervisor, host: Host, volume: Volume, image: Image) -> None:
    """A standalone copy of the cached image (not an overlay: the volume outlives the image
    and its cache), read through qemu-img convert (into RBD: by the driver, with the
    cluster's key)."""
    spec = _spec(volume, host)
    hv.delete_storage_volume(spec.pool, spec.name)  # an interrupted copy: erased, made anew
    if stores_no_data(host):
        # libvirt's fake keeps no data to copy, and its createXMLFrom finds a source only in
        # the target pool: the copy is an empty volume of the same spec there.
        hv.create_storage_volume(spec)
        return
    key = cluster_key(volume.ceph_cluster) if volume.ceph_cluster is not None else None
    hv.copy_storage_volume(images_pool(host), naming.cached_image(image.pk), spec, ceph_key=key)


def _grown_live(hv: Hypervisor, attachment: VolumeAttachment, wanted: int) -> bool:
    """Grown through the running guest's hypervisor; False when no running domain holds it
    (stopped, or not defined yet): the storage is resized instead."""
    try:
        return hv.resize_attached_disk(
            naming.domain(attachment.instance_id), attachment.device, wanted
        )
    except NotFound:
        return False


def _grow(hv: Hypervisor, host: Host, volume: Volume, size_gb: int) -> None:
    """The volume's storage at `size_gb` GiB (a copy comes out at the image's size; an
    extend asks for more). Already that size: a no-op."""
    if stores_no_data(host):
        return  # libvirt's fake hypervisor cannot resize volumes (virStorageVolResize)
    spec = _spec(volume, host)
    wanted = size_gb * GIB
    # A volume being created has no guest holding it yet, even attached (a boot volume: its
    # instance's domain is defined once it is made).
    attachment = active_attachment(volume.pk) if volume.status != VolumeStatus.CREATING else None
    if attachment is not None and _grown_live(hv, attachment, wanted):
        return  # grown live by the guest's QEMU, which holds the file: the guest is told
    if hv.storage_volume_info(spec.pool, spec.name).capacity_bytes < wanted:
        # Attached (a stopped instance's), an encrypted volume's secret is defined already.
        secret = nullcontext() if attachment is not None else volume_secret(hv, volume)
        with secret:
            hv.resize_storage_volume(spec.pool, spec.name, wanted)


def _copy_from_snapshot(hv: Hypervisor, host: Host, volume: Volume) -> None:
    """A standalone copy of the snapshot's file, in the same pool (the snapshot stays)."""
    spec = _spec(volume, host)
    hv.delete_storage_volume(spec.pool, spec.name)  # an interrupted copy: erased, made anew
    if stores_no_data(host):
        hv.create_storage_volume(spec)  # libvirt's fake keeps no data to copy
        return
    assert volume.source_snapshot_id is not None
    hv.copy_storage_volume(spec.pool, naming.volume_snapshot(volume.source_snapshot_id), spec)


def create_steps(hv: Hypervisor, volume: Volume, host: Host | None = None) -> Steps:
    """The steps of a create, on `host` (a directory volume's own by default)."""
    if host is None:
        assert volume.host is not None, "an rbd volume's create names the host it runs on"
        host = volume.host
    on: Host = host
    steps: Steps = [("pool", lambda: ensure_pool(hv, on, volume))]
    if volume.source_snapshot_id is not None:
        return [
            *steps,
            ("copy", lambda: _copy_from_snapshot(hv, on, volume)),
            ("grow", lambda: _grow(hv, on, volume, volume.size_gb)),
        ]
    if volume.source_image_id is None:
        return [*steps, ("create", lambda: _create_empty(hv, on, volume))]
    image = Image.objects.get(pk=volume.source_image_id)
    return [
        *steps,
        ("cache_image", lambda: cache_image(hv, on, image)),
        ("copy", lambda: _copy_from(hv, on, volume, image)),
        ("grow", lambda: _grow(hv, on, volume, volume.size_gb)),
    ]


def run_create(operation: Operation, volume: Volume) -> None:
    host = acting_host(operation, volume)
    hv = hypervisor_for(host)
    try:
        _run(operation, create_steps(hv, volume, host))
    except Exception as exc:
        # Nothing half-made stays behind: the partial volume is erased and removed.
        cleanup = ""
        try:
            spec = _spec(volume, host)
            hv.delete_storage_volume(spec.pool, spec.name)
        except DriverError as cleanup_exc:
            logger.warning("volume %s: partial storage not removed: %s", volume.pk, cleanup_exc)
            cleanup = f" (cleanup incomplete, an operator is told: {cleanup_exc})"
        fail(operation, volume, "create", DriverError(f"{exc}{cleanup}"), status=VolumeStatus.ERROR)
        return
    succeed(operation, status=_idle_status(volume))  # in-use: an instance's boot volume


def run_extend(operation: Operation, volume: Volume) -> None:
    """Grow the storage to the size the extend claimed (live, through the guest's QEMU, when
    the volume is attached to a running instance); on failure the volume is back at the size
    its storage really has (the old one, unless the grow got through). Either way it ends
    `in-use` if it is attached then, else `available`."""
    host = acting_host(operation, volume)
    hv = hypervisor_for(host)
    to_gb = int(operation.params["to_gb"])
    steps: Steps = [("grow", lambda: _grow(hv, host, volume, to_gb))]
    if is_rbd(volume):
        steps.insert(0, ("pool", lambda: ensure_pool(hv, host, volume)))
    try:
        _run(operation, steps)
    except Exception as exc:
        fail(
            operation, volume, "extend", exc, status=_idle_status(volume),
            size_gb=_size_after_failed_grow(hv, host, volume, operation),
        )  # fmt: skip
        return
    succeed(operation, status=_idle_status(volume))


def _idle_status(volume: Volume) -> str:
    attached = active_attachment(volume.pk) is not None
    return VolumeStatus.IN_USE if attached else VolumeStatus.AVAILABLE


def _size_after_failed_grow(
    hv: Hypervisor, host: Host, volume: Volume, operation: Operation
) -> int:
    from_gb, to_gb = int(operation.params["from_gb"]), int(operation.params["to_gb"])
    spec = _spec(volume, host)
    try:
        grown = hv.storage_volume_info(spec.pool, spec.name).capacity_bytes >= to_gb * GIB
    except DriverError:
        return from_gb  # unknown: the claim goes back; the next extend asks again
    return to_gb if grown else from_gb


def run_delete(operation: Operation, volume: Volume) -> None:
    """Erase then remove the storage (the driver overwrites before it deletes, so the space
    never reaches its next user with the data); the volume ends `deleted` with how it was
    erased, also recorded on the operation and in the audit chain (`volume.erase`, which
    the tenant's audit export shows)."""
    host = acting_host(operation, volume)
    hv = hypervisor_for(host)
    spec = _spec(volume, host)
    erased_by = ERASED_BY_NOTHING if stores_no_data(host) else ERASED_BY_WIPE
    if is_rbd(volume) and not stores_no_data(host):
        erased_by = ERASED_BY_RBD_REMOVE
    try:
        steps: Steps = [("erase", lambda: hv.delete_storage_volume(spec.pool, spec.name))]
        if is_rbd(volume):  # the pool and its key on this host first
            steps.insert(0, ("pool", lambda: ensure_pool(hv, host, volume)))
        if is_encrypted(volume):  # a secret left by an interrupted operation goes too
            steps.append(("secret", lambda: forget_secret(hv, volume)))
        _run(operation, steps)
    except Exception as exc:
        fail(operation, volume, "delete", exc, status=VolumeStatus.ERROR)
        return
    record_erasure(operation, volume, erased_by, status=VolumeStatus.DELETED)


def record_erasure(operation: Operation, target: Any, erased_by: str, *, status: str) -> None:
    """The storage of `target` (a volume or a volume snapshot) is erased: it ends in `status`
    with `erased_by`, also recorded on the operation and in the audit chain as
    `<target type>.erase` (the tenant's audit export shows it), in one transaction."""
    with transaction.atomic():
        operation.params = {**operation.params, "erased_by": erased_by}
        Operation.objects.filter(pk=operation.pk).update(params=operation.params)
        succeed(operation, status=status, erased_by=erased_by)
        audit_record(
            actor=worker_actor(), action=f"{operation.target_type}.erase",
            tenant_id=target.tenant_id, target=target,
            details={"erased_by": erased_by, "operation": str(operation.pk)},
        )  # fmt: skip
