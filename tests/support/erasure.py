"""Proving erasure on a directory backend (issue 11 "Done means"): a marker written into a
volume's file, a second name (hard link) for the file's inode kept across the delete, and the
file's physical blocks as the filesystem maps them (FIEMAP, through `filefrag -v`).

After an erase the hard link must hold no marker, and the blocks that held the marker must
still belong to the inode, now reading zeros: they were overwritten in place before the space
was freed (a truncation would free them with the data still on them; the link would then own
no block at all)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

MARKER_BYTE = 0x41  # "A"
MARKER = bytes([MARKER_BYTE]) * 4096  # one block of it
BLOCK = 4096  # the block size filefrag is asked to report in
_EXTENT = re.compile(r"^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.")


def write_marker(path: Path, *, fmt: str = "qcow2", mib: int = 1) -> None:
    """`mib` MiB of the marker at the start of the guest-visible disk, through QEMU's own
    block layer (qemu-io: the clusters a guest's write would allocate)."""
    subprocess.run(
        ["qemu-io", "-f", fmt, "-c", f"write -P {MARKER_BYTE:#x} 0 {mib}M", str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    os.sync()  # delayed allocation: the blocks are mapped once written back


def holds_marker(path: Path) -> bool:
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            if MARKER in chunk:
                return True
    return False


def _extents(path: Path) -> list[tuple[int, int, int]]:
    """(first logical block, last logical block, first physical block) of each extent."""
    os.sync()
    out = subprocess.run(
        ["filefrag", "-v", f"-b{BLOCK}", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [
        (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        for m in map(_EXTENT.match, out.splitlines())
        if m
    ]


def physical_blocks(path: Path) -> set[int]:
    """The filesystem blocks the file's data lies on."""
    return {
        physical + offset
        for first, last, physical in _extents(path)
        for offset in range(last - first + 1)
    }


def marker_blocks(path: Path) -> set[int]:
    """The physical blocks that hold the marker (filesystem blocks of 4 KiB)."""
    found: set[int] = set()
    with path.open("rb") as file:
        for first, last, physical in _extents(path):
            for offset in range(last - first + 1):
                file.seek((first + offset) * BLOCK)
                if file.read(BLOCK) == MARKER:
                    found.add(physical + offset)
    return found
