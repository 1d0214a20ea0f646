"""Is a file declared raw really another disk format? What QEMU's block probes would say.

A raw upload must not be another format in disguise: any tool or operator command that lets
qemu probe the format (`qemu-img info disk`, no `-f`) would open it as that format and follow
what it references — a VMDK text descriptor lists extents that may be any host file. So a raw
upload is refused if any of QEMU's content probes (`bdrv_probe` in block/*.c) recognises it,
plus the two formats QEMU finds by their trailer rather than their start (a fixed VHD's
"conectix" footer, a DMG's "koly" trailer). vvfat has no probe; host_device and host_cdrom
probe the file name, not the content.

Each probe is checked here as QEMU does, or more strictly (a prefix of the magic is enough).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

# QEMU hands each probe the first BLOCK_PROBE_BUF_SIZE bytes of the file.
PROBE_BYTES = 512
# The DMG trailer is found in the last 1023 bytes (dmg_find_koly_offset), the VHD footer in
# the last 512.
TAIL_BYTES = 1024


def _u32be(buf: bytes, offset: int) -> int:
    return int(struct.unpack_from(">I", buf, offset)[0]) if len(buf) >= offset + 4 else -1


def _qcow(head: bytes) -> bool:  # block/qcow.c: magic and version 1
    return head[:4] == b"QFI\xfb" and _u32be(head, 4) == 1


def _qcow2(head: bytes) -> bool:  # block/qcow2.c: magic and version >= 2
    return head[:4] == b"QFI\xfb" and _u32be(head, 4) >= 2


def _qed(head: bytes) -> bool:  # block/qed.c: little-endian "QED\0"
    return head[:4] == b"QED\x00"


def _vmdk(head: bytes) -> bool:
    """block/vmdk.c: the binary magics, or a text descriptor: after comment lines ('#…') and
    blank lines (spaces only), a line `version=N`."""
    if head[:4] in (b"KDMV", b"COWD"):
        return True
    for line in head.split(b"\n"):
        stripped = line.rstrip(b"\r")
        if stripped.startswith(b"#"):
            continue
        if stripped.strip(b" ") == b"":
            continue
        # QEMU accepts version=1, 2 (and 3 in later releases); any version is refused here.
        return stripped.startswith(b"version=")
    return False


def _vdi(head: bytes) -> bool:  # block/vdi.c: signature 0xbeda107f (LE) at offset 64
    return head[64:68] == b"\x7f\x10\xda\xbe"


def _vpc(head: bytes) -> bool:  # block/vpc.c: "conectix" at the start
    return head[:8] == b"conectix"


def _vhdx(head: bytes) -> bool:  # block/vhdx.c: "vhdxfile" at the start
    return head[:8] == b"vhdxfile"


def _parallels(head: bytes) -> bool:  # block/parallels.c: either magic
    return head[:16] in (b"WithoutFreeSpace", b"WithouFreSpacExt")


def _bochs(head: bytes) -> bool:  # block/bochs.c: "Bochs Virtual HD Image" magic
    return head.startswith(b"Bochs Virtual HD Image")


def _cloop(head: bytes) -> bool:  # block/cloop.c: the V2.0 shell-script header
    return head.startswith(b"#!/bin/sh\n#V2.0 Format\n")


def _luks(head: bytes) -> bool:  # block/crypto.c (crypto/block-luks.c): "LUKS\xba\xbe"
    return head[:6] == b"LUKS\xba\xbe"


HEAD_PROBES: list[tuple[str, Callable[[bytes], bool]]] = [
    ("qcow2", _qcow2),
    ("qcow", _qcow),
    ("qed", _qed),
    ("vmdk", _vmdk),
    ("vdi", _vdi),
    ("vpc", _vpc),
    ("vhdx", _vhdx),
    ("parallels", _parallels),
    ("bochs", _bochs),
    ("cloop", _cloop),
    ("luks", _luks),
]


def _tail_format(tail: bytes) -> str | None:
    """A fixed VHD ends with a 512-byte footer starting "conectix"; a DMG's 512-byte "koly"
    trailer ends the file (QEMU tolerates up to 511 bytes after it)."""
    if tail[-512:][:8] == b"conectix":
        return "vpc"
    window = tail[-1023:]
    position = window.find(b"koly")
    if position != -1 and position <= len(window) - 512:
        return "dmg"
    return None


def probe(head: bytes, tail: bytes = b"") -> str | None:
    """The format QEMU would take a file for, from its first PROBE_BYTES (`head`) and last
    TAIL_BYTES (`tail`), or None if it is only raw."""
    for name, matches in HEAD_PROBES:
        if matches(head[:PROBE_BYTES]):
            return name
    return _tail_format(tail) if tail else None


def probe_file(path: Path) -> str | None:
    """`probe` on the file at `path` (two bounded reads)."""
    with path.open("rb") as file:
        head = file.read(PROBE_BYTES)
        size = os.fstat(file.fileno()).st_size
        file.seek(max(0, size - TAIL_BYTES))
        tail = file.read(TAIL_BYTES)
    return probe(head, tail)
