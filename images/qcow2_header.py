"""The qcow2 header, read in pure Python before qemu-img ever opens the file (review M5).

Opening a qcow2 makes QEMU open what its header references: a backing file, an external data
file (on QEMU builds without the CVE-2024-4467 fix, a `json:{…}` data-file name opens any block
driver: local files and devices, NBD or SSH servers). So the header is checked first, the way
OpenStack's `format_inspector` does since CVE-2024-32498, and anything that points outside the
file, anything encrypted and any feature bit we do not know is refused before qemu-img runs.

The layout is QEMU's `docs/interop/qcow2.txt`: a big-endian header (72 bytes in version 2, at
least 104 in version 3), then header extensions (type, length, data padded to 8 bytes) up to
the end of the first cluster. Reads are bounded: at most the first cluster, itself at most
2 MiB.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"QFI\xfb"
V2_HEADER_LENGTH = 72
V3_MIN_HEADER_LENGTH = 104
# QEMU accepts cluster_bits 9 (512 B) to 21 (2 MiB).
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
MAX_VIRTUAL_SIZE = 2**63 - 1

# Incompatible feature bits (qcow2.txt). Known and harmless for a standalone image: dirty
# (refcounts to rebuild), compression type (zstd), extended L2 entries (subclusters).
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
SAFE_INCOMPATIBLE = INCOMPAT_DIRTY | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2

# Header extension types (qcow2.txt).
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

_V2 = struct.Struct(">4sIQIIQIIQQIIQ")  # the 72 bytes every version has
_V3 = struct.Struct(">QQQII")  # incompatible, compatible, autoclear, refcount_order, length


class HeaderRefused(Exception):
    """The header makes the file unacceptable; `message` says why, for the image's owner."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Qcow2Header:
    version: int
    cluster_bits: int
    size: int  # the virtual size, in bytes
    incompatible_features: int
    header_length: int
    extensions: tuple[int, ...]  # the extension types, in file order


def _refuse(reason: str) -> HeaderRefused:
    return HeaderRefused(f"The qcow2 header check refused the file: {reason}")


def check(path: Path) -> Qcow2Header:
    """Read and check the header of the file at `path` (see `parse`)."""
    with path.open("rb") as file:
        head = file.read(V2_HEADER_LENGTH)
        if len(head) < V2_HEADER_LENGTH or head[:4] != MAGIC:
            return parse(head)  # refused there, with the reason
        cluster_bits = struct.unpack_from(">I", head, 20)[0]
        if MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
            head += file.read((1 << cluster_bits) - V2_HEADER_LENGTH)
    return parse(head)


def parse(head: bytes) -> Qcow2Header:
    """Check a qcow2 header, `head` being the start of the file (its first cluster, or all
    of it when shorter). HeaderRefused unless it is a version 2 or 3 qcow2 that stands alone:
    no backing file, no external data file, no encryption, no unknown incompatible feature,
    sane cluster size and header extensions inside the first cluster."""
    if len(head) < 4 or head[:4] != MAGIC:
        raise HeaderRefused(
            "Andromède cannot read the file as qcow2: it does not start with the qcow2 signature."
        )
    if len(head) < V2_HEADER_LENGTH:
        raise _refuse("the file is shorter than a qcow2 header.")
    (
        _magic,
        version,
        backing_offset,
        backing_size,
        cluster_bits,
        size,
        crypt_method,
        _l1_size,
        _l1_offset,
        _refcount_offset,
        _refcount_clusters,
        _snapshots,
        _snapshots_offset,
    ) = _V2.unpack_from(head, 0)
    if version not in (2, 3):
        raise _refuse(f"qcow2 version {version} is not supported (only 2 and 3).")
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise _refuse(f"cluster_bits {cluster_bits} is outside 9 to 21.")
    cluster_size = 1 << cluster_bits
    if version == 3 and len(head) < V3_MIN_HEADER_LENGTH:
        raise _refuse("the file is shorter than its header.")
    if backing_offset != 0 or backing_size != 0:
        raise _refuse(
            "the image references a backing file; upload a standalone image "
            "(e.g. `qemu-img convert -O qcow2 overlay.qcow2 standalone.qcow2`)."
        )
    if crypt_method != 0:
        raise _refuse("the image is encrypted; upload an unencrypted image.")
    if size > MAX_VIRTUAL_SIZE:
        raise _refuse("the virtual size is out of range.")

    incompatible = 0
    header_length = V2_HEADER_LENGTH
    if version == 3:
        incompatible, _compatible, _autoclear, refcount_order, header_length = _V3.unpack_from(
            head, V2_HEADER_LENGTH
        )
        if header_length < V3_MIN_HEADER_LENGTH or header_length % 8 != 0:
            raise _refuse(f"header length {header_length} is not valid.")
        if header_length > cluster_size:
            raise _refuse("the header is larger than a cluster.")
        if header_length > len(head):
            raise _refuse("the file is shorter than its header.")
        if refcount_order > 6:
            raise _refuse(f"refcount order {refcount_order} is out of range.")
        if incompatible & INCOMPAT_DATA_FILE:
            raise _refuse(
                "the image keeps its data in an external data file; upload a standalone image."
            )
        if incompatible & INCOMPAT_CORRUPT:
            raise _refuse("the image is marked corrupt.")
        unknown = incompatible & ~SAFE_INCOMPATIBLE
        if unknown:
            raise _refuse(f"the image uses incompatible features unknown here (bits {unknown:#x}).")
        if header_length > V3_MIN_HEADER_LENGTH and head[V3_MIN_HEADER_LENGTH] not in (0, 1):
            raise _refuse(f"compression type {head[V3_MIN_HEADER_LENGTH]} is unknown.")
    return Qcow2Header(
        version=version,
        cluster_bits=cluster_bits,
        size=size,
        incompatible_features=incompatible,
        header_length=header_length,
        extensions=_extensions(head, header_length, cluster_size),
    )


def _extensions(head: bytes, start: int, cluster_size: int) -> tuple[int, ...]:
    """The header extensions' types, refusing those that reach outside the file. QEMU reads
    them from the end of the header to the end of the first cluster."""
    end = min(cluster_size, len(head))
    offset = start
    found: list[int] = []
    while offset + 8 <= end:
        kind, length = struct.unpack_from(">II", head, offset)
        offset += 8
        if kind == EXT_END:
            return tuple(found)
        if length > end - offset:
            raise _refuse("a header extension runs past the first cluster.")
        if kind == EXT_DATA_FILE:
            raise _refuse("the image names an external data file; upload a standalone image.")
        if kind == EXT_CRYPTO:
            raise _refuse("the image is encrypted; upload an unencrypted image.")
        found.append(kind)
        offset += (length + 7) & ~7
    # qemu-img writes an end marker (type 0); a list without one is not an image we made.
    raise _refuse("the header extensions have no end inside the first cluster.")
