"""Copying a storage volume from one host to another through the two libvirt connections
(virStorageVolDownload on the source, virStorageVolUpload on the target): the hosts need no
trust in each other, only the worker reaches both. Used by cold migration.

The content passes through an unnamed temporary file of the worker (an upload must be told
its length up front, and a download's length is known only at its end); that file is
overwritten with zeros before it is closed, as the hosts' own erase does, so the tenant's
data does not stay on the worker's disk. Every driver call is bounded by the driver (each
stream message has its own timeout).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from typing import BinaryIO

from hypervisor.base import DriverError, Hypervisor, StorageVolumeInfo, StorageVolumeSpec

logger = logging.getLogger(__name__)

_ZEROS = bytes(1024 * 1024)


def transfer_storage_volume(
    source: Hypervisor,
    source_pool: str,
    source_name: str,
    target: Hypervisor,
    spec: StorageVolumeSpec,
    *,
    flatten_as: str | None = None,
) -> StorageVolumeInfo:
    """Make `spec` on `target` a copy of the source volume's content. `spec` has no backing
    (the copy is standalone). A qcow2 overlay must be read through its backing chain: give
    `flatten_as`, the name of a scratch volume in the source pool, which receives a
    flattened copy on the source first and is erased afterwards, whatever happens.

    A volume named `spec.name` on the target is replaced (a partial copy cannot be told from
    a complete one). Missing source: NotFound. A failed copy erases what it made on the
    target before raising."""
    if spec.backing_volume is not None:
        raise DriverError("a transferred volume is standalone: its spec has no backing")
    read_from = source_name
    try:
        if flatten_as is not None:
            info = source.storage_volume_info(source_pool, source_name)
            source.delete_storage_volume(source_pool, flatten_as)  # a previous attempt's
            source.copy_storage_volume(
                source_pool,
                source_name,
                StorageVolumeSpec(
                    pool=source_pool,
                    name=flatten_as,
                    capacity_bytes=info.capacity_bytes,
                    format=spec.format,
                ),
            )
            read_from = flatten_as
        target.delete_storage_volume(spec.pool, spec.name)
        try:
            with tempfile.TemporaryFile() as spool:
                try:
                    length = source.download_storage_volume(source_pool, read_from, spool.write)
                    spool.flush()
                    spool.seek(0)
                    target.create_storage_volume(spec)
                    target.upload_storage_volume(spec.pool, spec.name, spool, length)
                finally:
                    _zero(spool)
        except BaseException:
            with contextlib.suppress(DriverError):
                target.delete_storage_volume(spec.pool, spec.name)
            raise
    finally:
        if flatten_as is not None:
            source.delete_storage_volume(source_pool, flatten_as)
    return target.storage_volume_info(spec.pool, spec.name)


def _zero(spool: BinaryIO) -> None:
    """Overwrite the spool file's bytes with zeros and sync them to disk."""
    try:
        spool.seek(0, os.SEEK_END)
        size = spool.tell()
        spool.seek(0)
        for offset in range(0, size, len(_ZEROS)):
            spool.write(_ZEROS[: min(len(_ZEROS), size - offset)])
        spool.flush()
        os.fsync(spool.fileno())
    except OSError:
        logger.exception("the transfer's temporary file could not be zeroed")
