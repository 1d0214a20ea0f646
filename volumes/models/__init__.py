"""The volume models (DESIGN §1, §8): volume types chosen by operators, the tenants'
volumes, their attachments to instances, and their snapshots."""

from volumes.models.attachments import VolumeAttachment
from volumes.models.keys import TenantKey
from volumes.models.snapshots import VolumeSnapshot
from volumes.models.volume_types import VolumeType
from volumes.models.volumes import Volume

__all__ = ["TenantKey", "Volume", "VolumeAttachment", "VolumeSnapshot", "VolumeType"]
