"""Reads of networks and ports."""

from __future__ import annotations

import uuid

from network.models import Port


def device_port(device_id: uuid.UUID) -> Port:
    """The port of a device with one NIC, with its network (Port.DoesNotExist if none)."""
    return Port.objects.select_related("network").get(device_id=device_id)
