"""Attaching and detaching an instance's volumes, live (DESIGN §8, issue 11 item 2): the
instance is taken for the verb (one at a time, so two attaches never pick one device), the
volume under its row lock (volumes.services.attachments: of two parallel attaches of one
volume exactly one wins), a free device chosen; a worker on the instance's host plugs the
disk into the running guest and its definition (or takes it out): compute.worker.volumes."""

from __future__ import annotations

from django.db import transaction

from compute.models import Instance
from compute.services.instances import queue_operation
from compute.states import INSTANCE_LIFECYCLE
from iaas.audit import Actor
from iaas.errors import ConflictError
from operations.models import Operation
from volumes.models import Volume
from volumes.selectors import attachments_of
from volumes.services.attachments import volume_attachment_begin, volume_detach_begin

#: What the instance's own disks take: the root disk (vda; the seed is sda, on SCSI).
RESERVED_DEVICES = frozenset({"vda"})
#: The devices attached volumes get, in order: 16 at most per instance (each one is a PCI
#: device of the guest's bus, which also holds the NICs).
VOLUME_DEVICES = tuple(f"vd{letter}" for letter in "bcdefghijklmnopq")


def _free_device(instance: Instance) -> str:
    """The first device no attachment of the instance uses (409 `too_many_volumes`)."""
    used = RESERVED_DEVICES | {a.device for a in attachments_of(instance.pk)}
    for device in VOLUME_DEVICES:
        if device not in used:
            return device
    raise ConflictError(
        f"An instance has at most {len(VOLUME_DEVICES)} volumes attached.",
        code="too_many_volumes",
    )


@transaction.atomic
def instance_volume_attach(*, actor: Actor, instance: Instance, volume: Volume) -> Operation:
    """Attach the tenant's `available` volume to an active or stopped, idle instance (409
    `wrong_state` otherwise; the volume: 409 `volume_in_use`, `wrong_state` or
    `volume_on_other_host`, see volumes.services.attachments). The volume is `attaching`
    with its device shown; the operation plugs it in, live if the instance runs, and into
    its definition either way, so it stays across reboots."""
    INSTANCE_LIFECYCLE.begin(instance, "attach_volume")
    assert instance.host is not None
    attachment = volume_attachment_begin(
        volume=volume, instance_id=instance.pk, host=instance.host, device=_free_device(instance)
    )
    return queue_operation(
        actor=actor, instance=instance, action="instance.attach_volume",
        params={"volume": str(volume.pk), "attachment": str(attachment.pk),
                "device": attachment.device},
    )  # fmt: skip


@transaction.atomic
def instance_volume_detach(*, actor: Actor, instance: Instance, volume: Volume) -> Operation:
    """Detach a volume from an active or stopped, idle instance (409 `wrong_state`
    otherwise; 409 `volume_not_attached` if it is not attached there). The volume is
    `detaching`; the operation takes the disk out of the definition and asks the running
    guest to release it: a guest that does not within the bound leaves the volume
    `in-use`, with a fault, and a new detach finishes the job."""
    INSTANCE_LIFECYCLE.begin(instance, "detach_volume")
    attachment = volume_detach_begin(volume=volume, instance_id=instance.pk)
    return queue_operation(
        actor=actor, instance=instance, action="instance.detach_volume",
        params={"volume": str(volume.pk), "attachment": str(attachment.pk),
                "device": attachment.device},
    )  # fmt: skip
