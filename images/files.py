"""Image files: receiving an upload into the image store and inspecting it.

No Django here: the service (`images.services.images`) passes the store, the limits and the
declared format, and turns these exceptions into the API's errors and the image's status.

An uploaded file is untrusted. It is inspected with `qemu-img info` told the declared format
(`-f`), never probed by qemu (probing lets a raw image pass itself off as qcow2 and point at
any file on the host), and refused if it references anything outside itself: a backing file
or an external data file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

CHUNK_BYTES = 1024 * 1024
QEMU_IMG_TIMEOUT_SECONDS = 60
# qemu-img runs on untrusted input: bound its memory and CPU as well as its time.
QEMU_IMG_MAX_MEMORY_BYTES = 1024**3
QEMU_IMG_MAX_CPU_SECONDS = 30

# Signatures of the disk formats qemu knows, for files declared raw: a raw image must not be
# another format in disguise. (offset, magic, format)
_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"QFI\xfb", "qcow2"),
    (0, b"QED\x00", "qed"),
    (0, b"KDMV", "vmdk"),
    (0, b"COWD", "vmdk"),
    (0, b"# Disk DescriptorFile", "vmdk"),
    (0, b"vhdxfile", "vhdx"),
    (0, b"conectix", "vpc"),
    (64, b"\x7f\x10\xda\xbe", "vdi"),
    (0, b"LUKS\xba\xbe", "luks"),
    (0, b"WithoutFreeSpace", "parallels"),
    (0, b"WithouFreSpacExt", "parallels"),
    (0, b"Bochs Virtual HD Image", "bochs"),
    (0, b"#!/bin/sh\n#V2.0 Format", "cloop"),
]
_SNIFF_BYTES = 512


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


class Incomplete(Exception):
    """The stream ended before the declared length."""

    def __init__(self, received: int, declared: int):
        super().__init__(f"{received} of {declared} bytes received")
        self.received = received
        self.declared = declared


class Refused(Exception):
    """The file is not an acceptable image; `message` says why, for the image's owner."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Received:
    path: Path  # a temporary file in the store's directory
    size: int
    sha256: str


@dataclass(frozen=True)
class Inspection:
    format: str
    virtual_size: int


class Receiver:
    """A new temporary file in `directory` that chunks are written to, hashed on the way and
    counted against `max_bytes` (TooLarge as soon as more arrive). `finish()` flushes it to
    disk and returns what was received; `discard()` removes it (a no-op once finished and
    moved away). Used as a context manager, a failure inside discards the file."""

    def __init__(self, *, directory: Path, prefix: str, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".part")
        self.path = Path(name)
        self._out = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self._max_bytes = max_bytes
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise TooLarge(self._max_bytes)
        self._digest.update(chunk)
        self._out.write(chunk)

    def finish(self) -> Received:
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        return Received(path=self.path, size=self.size, sha256=self._digest.hexdigest())

    def discard(self) -> None:
        self._out.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.discard()


def receive(
    stream: Readable, *, directory: Path, prefix: str, max_bytes: int, length: int | None
) -> Received:
    """Copy `stream` into a new temporary file in `directory`, 1 MiB at a time, hashing it on
    the way. Reads `length` bytes when given (Incomplete if the stream ends first), else to
    the end of the stream. TooLarge as soon as more than `max_bytes` arrive. On any failure
    the temporary file is removed."""
    with Receiver(directory=directory, prefix=prefix, max_bytes=max_bytes) as receiver:
        while length is None or receiver.size < length:
            wanted = CHUNK_BYTES if length is None else min(CHUNK_BYTES, length - receiver.size)
            chunk = stream.read(wanted)
            if not chunk:
                break
            receiver.write(chunk)
        if length is not None and receiver.size < length:
            raise Incomplete(receiver.size, length)
        return receiver.finish()


def sniff_format(path: Path) -> str | None:
    """The non-raw format whose signature the file starts with, or None."""
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def _qemu_img_info(path: Path, declared_format: str) -> dict[str, Any]:
    command = ["qemu-img", "info", "--output=json", "-f", declared_format, str(path)]
    if shutil.which("prlimit"):
        command = [
            "prlimit",
            f"--as={QEMU_IMG_MAX_MEMORY_BYTES}",
            f"--cpu={QEMU_IMG_MAX_CPU_SECONDS}",
            "--",
            *command,
        ]
    try:
        result = subprocess.run(  # noqa: S603 - an argument list, no shell
            command,
            capture_output=True,
            text=True,
            timeout=QEMU_IMG_TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired as exc:
        raise Refused(
            f"Inspecting the file took longer than {QEMU_IMG_TIMEOUT_SECONDS} s; it was refused."
        ) from exc
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
        reason = reason.replace(str(path), "the file").removeprefix("qemu-img: ")
        raise Refused(f"qemu-img cannot read the file as {declared_format}: {reason}")
    try:
        info = json.loads(result.stdout)
    except ValueError as exc:
        raise Refused("qemu-img gave an unreadable answer about the file.") from exc
    if not isinstance(info, dict):
        raise Refused("qemu-img gave an unreadable answer about the file.")
    return info


def inspect(path: Path, declared_format: str) -> Inspection:
    """Check that the file is an image of `declared_format` that stands alone. Refused
    otherwise, with a message for the image's owner."""
    sniffed = sniff_format(path)
    if declared_format == "raw" and sniffed is not None:
        raise Refused(
            f"The file is a {sniffed} image, not raw: declare its real format "
            "(or convert it to raw first)."
        )
    info = _qemu_img_info(path, declared_format)
    detected = info.get("format")
    if detected != declared_format or (declared_format == "qcow2" and sniffed != "qcow2"):
        raise Refused(f"The file is not a {declared_format} image (qemu-img sees {detected!r}).")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise Refused(
            "The image references a backing file; upload a standalone image "
            "(e.g. `qemu-img convert -O qcow2 overlay.qcow2 standalone.qcow2`)."
        )
    specific = info.get("format-specific") or {}
    data = (specific.get("data") or {}) if isinstance(specific, dict) else {}
    if not isinstance(data, dict):
        data = {}
    if data.get("data-file"):
        raise Refused(
            "The image keeps its data in an external data file; upload a standalone image."
        )
    if info.get("encrypted") or data.get("encrypt"):
        raise Refused("The image is encrypted; upload an unencrypted image.")
    if data.get("corrupt"):
        raise Refused("qemu-img reports the image as corrupt.")
    virtual_size = info.get("virtual-size")
    if not isinstance(virtual_size, int) or virtual_size <= 0:
        raise Refused("The image has no usable virtual size.")
    return Inspection(format=declared_format, virtual_size=virtual_size)


def empty_qcow2(capacity_bytes: int) -> bytes:
    """The bytes of an empty qcow2 image of `capacity_bytes` (made by qemu-img)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "empty.qcow2"
        command = ["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(capacity_bytes)]
        subprocess.run(  # noqa: S603 - an argument list, no shell
            command, capture_output=True, timeout=QEMU_IMG_TIMEOUT_SECONDS, check=True
        )
        return path.read_bytes()
