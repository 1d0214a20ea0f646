"""Worker handler of snapshot: an instance's root disk into a new private image."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from compute.models import Instance
from compute.worker.steps import (
    pool_names,
    run_steps,
    shutdown_steps,
    stores_no_data,
    wait_running,
)
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hypervisor.base import DriverError, Hypervisor, PowerState, StorageVolumeSpec
from images import files as image_files
from images.models import Image
from images.services import images as image_services
from images.services.stores import ResidencyUnsatisfiable, store_for_file
from operations.models import Operation
from operations.services import deadlines
from operations.services.outcomes import fail, succeed
from operations.services.runs import worker_actor

logger = logging.getLogger(__name__)


def _image_active(image: Image) -> bool:
    image.refresh_from_db(fields=["status"])
    return bool(image.status == image.Status.ACTIVE)


def copy_root_disk(hv: Hypervisor, instance: Instance, image: Image) -> None:
    """A standalone copy of the root disk (its overlay flattened onto the base image), in
    the instances pool beside it. A copy left by an earlier run may be incomplete: it is
    removed and made again. The image already active (a run after the store step): nothing
    to do."""
    if _image_active(image):
        return
    host = instance.host
    assert host is not None
    pools = pool_names(host)
    name = naming.snapshot_copy(image.pk)
    hv.delete_storage_volume(pools["instances"], name)
    source = hv.storage_volume_info(pools["instances"], naming.root_disk(instance.pk))
    spec = StorageVolumeSpec(
        pool=pools["instances"], name=name, capacity_bytes=source.capacity_bytes, format="qcow2"
    )
    hv.copy_storage_volume(pools["instances"], naming.root_disk(instance.pk), spec)


def _store_snapshot(hv: Hypervisor, instance: Instance, image: Image) -> None:
    """Stream the copy from the host into the image store, hashing it on the way, and make
    the image active through the same inspection as an upload (it must stand alone)."""
    if _image_active(image):
        return
    host = instance.host
    assert host is not None
    limit = settings.IMAGE_MAX_BYTES
    # Before a byte leaves the host: the store must lie where the tenant's residency allows
    # now (the policy may have changed since the snapshot was asked for).
    store_for_file(image)
    store = image_services.store_directory(image)
    prefix = image_services.part_prefix(image)
    try:
        with image_files.Receiver(directory=store, prefix=prefix, max_bytes=limit) as rx:
            copy = naming.snapshot_copy(image.pk)
            if stores_no_data(host):  # nor can it download: its disk is empty
                size = hv.storage_volume_info(pool_names(host)["instances"], copy).capacity_bytes
                rx.write(image_files.empty_qcow2(size))
            else:
                hv.download_storage_volume(pool_names(host)["instances"], copy, rx.write)
            received = rx.finish()
    except image_files.TooLarge as exc:
        raise DriverError(
            f"the disk's copy is larger than the image size limit ({limit} bytes)"
        ) from exc
    image_services.image_save_snapshot(actor=worker_actor(), image=image, received=received)


def _power_after_failure(hv: Hypervisor, instance: Instance, was_active: bool) -> dict[str, Any]:
    """After a failed snapshot: boot a guest that was running (best effort) and say what
    the instance is now; nothing when the host cannot tell (the reconciler will)."""
    name = naming.domain(instance.pk)
    try:
        if was_active and hv.domain_info(name).power_state != PowerState.RUNNING:
            hv.start_domain(name)
            wait_running(hv, instance)
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


def run_snapshot(operation: Operation, instance: Instance) -> None:
    """Power a running guest off cleanly, copy its root disk into a standalone image on the
    host, stream that into the image store (the image becomes active), remove the copy and
    boot the guest again. A failure removes the copy, puts the image in `error` with the
    reason and boots the guest if it was running."""
    host = instance.host
    assert host is not None
    hv = hypervisor_for(host)
    pools = pool_names(host)
    image = Image.objects.get(pk=operation.params["image"])
    was_active = bool(operation.params.get("was_active"))
    name = naming.domain(instance.pk)
    steps = shutdown_steps(hv, instance) if was_active else []
    steps += [
        ("copy_disk", lambda: copy_root_disk(hv, instance, image)),
        ("store_image", lambda: _store_snapshot(hv, instance, image)),
        (
            "remove_copy",
            lambda: hv.delete_storage_volume(pools["instances"], naming.snapshot_copy(image.pk)),
        ),
    ]
    if was_active:
        steps += [
            ("start", lambda: hv.start_domain(name)),
            ("wait_running", lambda: wait_running(hv, instance)),
        ]
    try:
        run_steps(operation, steps)
    except Exception as exc:
        try:
            hv.delete_storage_volume(pools["instances"], naming.snapshot_copy(image.pk))
        except DriverError:
            logger.exception("the copy of snapshot %s could not be removed", image.pk)
        refused = isinstance(exc, ResidencyUnsatisfiable)
        image_services.image_snapshot_failed(
            actor=worker_actor(),
            image_id=image.pk,
            message=f"The snapshot {'was refused' if refused else 'failed'}: {exc}",
            code=ResidencyUnsatisfiable.code if refused else "",
        )
        fail(operation, instance, "snapshot", exc, **_power_after_failure(hv, instance, was_active))
        return
    succeed(operation)


def abandon_snapshot(operation: Operation, reason: str) -> None:
    """The snapshot was abandoned (past its deadline): its image will never be filled."""
    image_services.image_snapshot_failed(
        actor=deadlines.SWEEPER,
        image_id=operation.params.get("image", ""),
        message=f"The snapshot failed: {reason}",
    )
