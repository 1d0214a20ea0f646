"""Worker handlers of create, delete, start, stop, reboot and rebuild (DESIGN §2 step 4-5).

A failed build removes everything it made, releases the capacity and the address, and
leaves the instance in `error` with a fault a user can read.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from compute.models import Instance
from compute.worker.steps import (
    Steps,
    boot_steps,
    release_capacity,
    remove_artefacts,
    run_steps,
    run_verb,
    shutdown_steps,
    start_domain,
    volume_secrets_ensure,
    wait_running,
)
from compute.worker.volumes import forget_volume_secrets
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hypervisor.base import DriverError, PowerState
from iaas.errors import ConflictError
from images.models import Image
from operations.messages import tenant_text
from operations.models import Operation
from operations.services.outcomes import fail, succeed
from operations.services.runs import finish, step, worker_actor
from volumes.models import Volume
from volumes.selectors import attachments_of, boot_attachment
from volumes.services.attachments import volume_attachment_confirm, volume_attachments_release
from volumes.services.volumes import volume_delete

logger = logging.getLogger(__name__)


def run_create(operation: Operation, instance: Instance) -> None:
    host = instance.host
    assert host is not None
    hv = hypervisor_for(host)
    try:
        image = Image.objects.get(pk=instance.image_id)
        run_steps(operation, boot_steps(hv, instance, image, replace=False))
    except Exception as exc:
        # Nothing half-built stays behind: remove what was made, free capacity and address.
        cleanup = ""
        try:
            remove_artefacts(hv, instance)
        except DriverError as cleanup_exc:
            cleanup = f" (cleanup incomplete, an operator is told: {cleanup_exc})"
        with transaction.atomic():
            release_capacity(instance)
            fail(
                operation,
                instance,
                "build",
                DriverError(f"{exc}{cleanup}"),
                status=Instance.Status.ERROR,
            )
        return
    with transaction.atomic():
        boot = boot_attachment(instance.pk)
        if boot is not None:
            volume_attachment_confirm(boot)  # an existing boot volume: attaching → in-use
        succeed(operation, status=Instance.Status.ACTIVE, power_state=PowerState.RUNNING)


# --- instance.delete ----------------------------------------------------------------------


def run_delete(operation: Operation, instance: Instance) -> None:
    host = instance.host
    assert host is not None
    try:
        with step(operation, "remove"):
            remove_artefacts(hypervisor_for(host), instance)
            forget_volume_secrets(hypervisor_for(host), instance)
    except DriverError as exc:
        with transaction.atomic():
            Instance.objects.filter(pk=instance.pk).update(
                status=Instance.Status.ERROR,
                task_state=None,
                fault=f"Delete failed on its host: {tenant_text(exc)}. Retry the delete.",
            )
            finish(operation, error=str(exc))
        return
    with transaction.atomic():
        release_capacity(instance)
        # Its domain is gone: the volumes attached to it are free again, data kept; a boot
        # volume asked to go with it is deleted (erased by its own operation).
        to_delete = [a.volume_id for a in attachments_of(instance.pk) if a.delete_on_termination]
        volume_attachments_release(instance.pk)
        for volume in Volume.objects.filter(pk__in=to_delete):
            _delete_boot_volume(volume)
        Instance.objects.filter(pk=instance.pk).update(
            status=Instance.Status.DELETED,
            task_state=None,
            power_state="",
            deleted_at=timezone.now(),
            user_data="",  # often holds secrets: not kept past the instance (review L3)
        )
        finish(operation)


def _delete_boot_volume(volume: Volume) -> None:
    """Delete a boot volume asked to go with its instance (its own operation erases it).
    Refused now (a snapshot of it is being made): it is kept, `available`, with a fault
    saying so; the instance's delete goes on."""
    try:
        volume_delete(actor=worker_actor(), volume=volume)  # a savepoint: refused, undone
    except ConflictError as exc:
        logger.warning("boot volume %s kept: %s", volume.pk, exc)
        Volume.objects.filter(pk=volume.pk).update(
            fault=f"Not deleted with its instance ({exc}); delete it yourself."[:2000]
        )


# --- instance.start / instance.stop / instance.reboot -----------------------------------


def run_start(operation: Operation, instance: Instance) -> None:
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    steps: Steps = [
        ("start", lambda: start_domain(hv, instance)),  # already running: a no-op
        ("wait_running", lambda: wait_running(hv, instance)),
    ]
    run_verb(operation, instance, "start", steps,
              status=Instance.Status.ACTIVE, power_state=PowerState.RUNNING)  # fmt: skip


def run_stop(operation: Operation, instance: Instance) -> None:
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    run_verb(operation, instance, "stop", shutdown_steps(hv, instance),
              status=Instance.Status.STOPPED, power_state=PowerState.SHUTOFF)  # fmt: skip


def run_reboot(operation: Operation, instance: Instance) -> None:
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    name = naming.domain(instance.pk)
    hard = operation.params.get("type") == "hard"

    def reboot() -> None:
        volume_secrets_ensure(hv, instance)  # a hard reboot starts QEMU anew
        if hv.domain_info(name).power_state != PowerState.RUNNING:
            # Off (e.g. a redelivery after the guest powered off, or drift): boot it.
            hv.start_domain(name)
        else:
            hv.reboot_domain(name, hard=hard)

    steps: Steps = [
        ("reboot_hard" if hard else "reboot_soft", reboot),
        ("wait_running", lambda: wait_running(hv, instance)),
    ]
    run_verb(operation, instance, "reboot", steps,
              status=Instance.Status.ACTIVE, power_state=PowerState.RUNNING)  # fmt: skip


# --- instance.rebuild ---------------------------------------------------------------------


def run_rebuild(operation: Operation, instance: Instance) -> None:
    """Power off, wipe the root disk, lay a fresh overlay on the new image, rewrite the
    seed, redefine (same name, UUID and MAC) and boot. A failure leaves the instance in
    `error` with a fault; it keeps its allocation and address (it still exists)."""
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    try:
        image = Image.objects.get(pk=operation.params["image"])
        steps: Steps = [("destroy", lambda: hv.destroy_domain(naming.domain(instance.pk)))]
        run_steps(operation, steps + boot_steps(hv, instance, image, replace=True))
    except Exception as exc:
        fail(operation, instance, "rebuild", exc, status=Instance.Status.ERROR)
        return
    succeed(operation, status=Instance.Status.ACTIVE,
            power_state=PowerState.RUNNING, image_id=image.pk)  # fmt: skip
