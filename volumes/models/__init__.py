"""The volume models (DESIGN §1, §8): volume types chosen by operators, the tenants'
volumes, and their attachments to instances. Snapshots come with their slice of issue 11."""

from volumes.models.attachments import VolumeAttachment
from volumes.models.keys import TenantKey
from volumes.models.volume_types import VolumeType
from volumes.models.volumes import Volume

__all__ = ["TenantKey", "Volume", "VolumeAttachment", "VolumeType"]
