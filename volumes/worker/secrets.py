"""Encrypted volumes' libvirt secrets on their host (DESIGN §8): defined only while
something opens the volume — its create, an offline extend, an attachment — and undefined
afterwards, so a host holds no passphrase of a volume nobody uses. The passphrase is
unwrapped here, in the worker (volumes.crypto), and handed to libvirt only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hosts.models import Host
from hypervisor.base import DriverError, Hypervisor
from images.host_cache import stores_no_data
from volumes.crypto import is_encrypted, secret_uuid, volume_passphrase
from volumes.models import Volume


def volume_host(volume: Volume) -> Host:
    if volume.host is None:
        raise DriverError("the volume has no host (only directory volumes are supported yet)")
    return volume.host


def define_volume_secret(hv: Hypervisor, volume: Volume) -> None:
    """Define the encrypted volume's secret on its host (a plain volume, or libvirt's fake
    hypervisor, which has no secrets and holds no data: nothing)."""
    if is_encrypted(volume) and not stores_no_data(volume_host(volume)):
        hv.define_secret(
            secret_uuid(volume.pk), volume_passphrase(volume), description=f"volume {volume.pk}"
        )


def forget_secret(hv: Hypervisor, volume: Volume) -> None:
    """Undefine the volume's secret on its host (a no-op when it is not there)."""
    if is_encrypted(volume) and not stores_no_data(volume_host(volume)):
        hv.undefine_secret(secret_uuid(volume.pk))


@contextmanager
def volume_secret(hv: Hypervisor, volume: Volume) -> Iterator[None]:
    """An encrypted volume's passphrase defined on its host as a libvirt secret (ephemeral,
    private) for the time of the block, and undefined afterwards whatever happened; a plain
    volume, or libvirt's fake hypervisor (no secrets, no data): nothing. Used by the
    volume's own operations (create, offline extend); an attachment keeps the secret defined
    while it lasts (compute.worker.volumes)."""
    define_volume_secret(hv, volume)
    try:
        yield
    finally:
        forget_secret(hv, volume)
