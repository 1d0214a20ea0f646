"""The worker's side of attaching and detaching volumes (compute.services.volumes). Every
step is idempotent (the driver's attach and detach are), so a redelivered operation simply
runs again; the volume's outcome is written with the instance's, in one transaction."""

from __future__ import annotations

import logging

from django.db import transaction

from compute.models import Instance
from compute.worker.steps import Steps, run_steps, volume_disk
from hosts import naming
from hosts.ceph import ensure_ceph_pool
from hosts.hypervisors import hypervisor_for
from hypervisor.base import Hypervisor
from operations.messages import tenant_text
from operations.models import Operation
from operations.services.outcomes import fail, succeed
from volumes.crypto import is_encrypted
from volumes.models import VolumeAttachment
from volumes.selectors import attachments_of
from volumes.services.attachments import (
    volume_attachment_confirm,
    volume_attachment_end,
    volume_attachment_keep,
)
from volumes.worker.secrets import define_volume_secret, forget_secret

logger = logging.getLogger(__name__)

#: How long the guest has to let go of a disk being detached before the detach fails.
DETACH_TIMEOUT_SECONDS = 20


def _attachment(operation: Operation) -> VolumeAttachment | None:
    """The operation's attachment, while it is active and the instance's."""
    return (
        VolumeAttachment.objects.select_related("volume", "host")
        .filter(
            pk=operation.params["attachment"],
            instance_id=operation.target_id,
            detached_at__isnull=True,
        )
        .first()
    )


def run_attach_volume(operation: Operation, instance: Instance) -> None:
    """Plug the volume's disk into the guest and its definition; the volume is `in-use`.
    On a failure the disk is taken out again (a no-op where it never got) and the volume is
    `available`; if even that fails, the volume stays `in-use` with a fault (it may be
    plugged in: a detach finishes the job), never half attached and free."""
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    domain = naming.domain(instance.pk)
    attachment = _attachment(operation)
    if attachment is None:
        fail(operation, instance, "attach_volume", LookupError("the attachment is gone"))
        return
    volume = attachment.volume
    steps: Steps = [("attach", lambda: hv.attach_disk(domain, volume_disk(attachment)))]
    if is_encrypted(volume):  # its passphrase: on the host while the volume is attached
        steps.insert(0, ("secret", lambda: define_volume_secret(hv, volume)))
    if volume.ceph_cluster is not None:  # its cluster's key and pool on this host
        cluster, host = volume.ceph_cluster, instance.host
        steps.insert(0, ("ceph", lambda: ensure_ceph_pool(hv, host, cluster)))
    try:
        run_steps(operation, steps)
    except Exception as exc:
        try:
            hv.detach_disk(domain, attachment.device, DETACH_TIMEOUT_SECONDS)
            forget_secret(hv, volume)
        except Exception as undo_exc:
            logger.warning("attach of %s: undo failed: %s", attachment, undo_exc)
            with transaction.atomic():
                volume_attachment_keep(
                    attachment,
                    f"The attach failed ({tenant_text(exc)}) and the disk may still be plugged "
                    "in: detach the volume.",
                )
                fail(operation, instance, "attach_volume", exc)
            return
        with transaction.atomic():
            volume_attachment_end(attachment, fault=f"The attach failed: {tenant_text(exc)}")
            fail(operation, instance, "attach_volume", exc)
        return
    with transaction.atomic():
        volume_attachment_confirm(attachment)
        succeed(operation)


def run_detach_volume(operation: Operation, instance: Instance) -> None:
    """Take the disk out of the definition and the guest (it must let go within
    DETACH_TIMEOUT_SECONDS); the attachment ends and the volume is `available`. A guest
    that holds on: the operation fails, the volume stays `in-use` with a fault, and a new
    detach finishes the job."""
    assert instance.host is not None
    hv = hypervisor_for(instance.host)
    attachment = _attachment(operation)
    if attachment is None:
        succeed(operation)  # already detached (the instance was deleted meanwhile)
        return
    domain = naming.domain(instance.pk)
    steps: Steps = [
        ("detach", lambda: hv.detach_disk(domain, attachment.device, DETACH_TIMEOUT_SECONDS))
    ]
    if is_encrypted(attachment.volume):  # no passphrase left on the host
        steps.append(("secret", lambda: forget_secret(hv, attachment.volume)))
    try:
        run_steps(operation, steps)
    except Exception as exc:
        with transaction.atomic():
            volume_attachment_keep(attachment, f"The detach failed: {tenant_text(exc)}")
            fail(operation, instance, "detach_volume", exc)
        return
    with transaction.atomic():
        volume_attachment_end(attachment)
        succeed(operation)


def forget_volume_secrets(hv: Hypervisor, instance: Instance) -> None:
    """The instance's domain is gone: the secrets of its encrypted volumes leave the host
    (instance delete, before its attachments end)."""
    for attachment in attachments_of(instance.pk):
        forget_secret(hv, attachment.volume)


def abandon_volume_operation(operation: Operation, reason: str) -> None:
    """An attach or detach abandoned (past its deadline, its host lost): whether the disk is
    plugged in is unknown, so the volume stays attached, `in-use`, with the reason; a
    detach (idempotent) frees it."""
    attachment = _attachment(operation)
    if attachment is not None:
        volume_attachment_keep(attachment, reason)
