"""The volume models (DESIGN §1, §8): volume types chosen by operators, and the tenants'
volumes. Snapshots and attachments come with their slices of issue 11."""

from volumes.models.volume_types import VolumeType
from volumes.models.volumes import Volume

__all__ = ["Volume", "VolumeType"]
