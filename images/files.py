"""Image files: receiving an upload into the image store and inspecting it.

No Django here: the service (`images.services.images`) passes the store, the limits and the
declared format, and turns these exceptions into the API's errors and the image's status.

An uploaded file is untrusted (review M5). Its inspection, in this order:
1. in Python, before anything else reads it: a qcow2's header (`qcow2_header`: nothing that
   points outside the file, no encryption, no unknown incompatible feature); a raw file must
   not be anything QEMU's format probes recognise (`format_probes`);
2. `qemu-img info` told the declared format (`--image-opts driver=…`, never probed), run
   confined (`sandbox`: no network, an unprivileged user, a private directory, limits);
3. its answer checked again: the format, no backing file, no data file, no encryption.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from images import format_probes, qcow2_header, sandbox

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
QEMU_IMG_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class InspectionConfig:
    """How uploads are inspected: the qemu-img to run and the sandbox's user and limits
    (settings `IMAGE_INSPECT_*`)."""

    qemu_img: str = "qemu-img"
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)

    @classmethod
    def from_settings(cls, settings: Any) -> InspectionConfig:
        return cls(
            qemu_img=settings.IMAGE_INSPECT_QEMU_IMG,
            limits=sandbox.Limits(
                user=settings.IMAGE_INSPECT_USER,
                timeout_seconds=settings.IMAGE_INSPECT_TIMEOUT_SECONDS,
                cpu_seconds=settings.IMAGE_INSPECT_CPU_SECONDS,
                memory_bytes=settings.IMAGE_INSPECT_MEMORY_BYTES,
            ),
        )


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
    """The non-raw format QEMU's probes would take the file for, or None."""
    return format_probes.probe_file(path)


def _qemu_img_info(path: Path, declared_format: str, config: InspectionConfig) -> dict[str, Any]:
    options = f"driver={declared_format},file.driver=file,file.filename={sandbox.FILE_NAME}"
    command = [config.qemu_img, "info", "--output=json", "--image-opts", options]
    try:
        result = sandbox.run_on_file(command, path, config.limits)
    except sandbox.SandboxTimeout as exc:
        raise Refused(f"Inspecting the file failed: {exc.message}; it was refused.") from exc
    except sandbox.SandboxError as exc:
        # The reason is the operator's (this machine's setup), not the image owner's.
        logger.error("image inspection sandbox unavailable: %s", exc.message)
        raise Refused(
            "The file could not be inspected safely on this server; it was refused. "
            "Try again later or tell the operator."
        ) from exc
    if result.returncode < 0:  # killed by a signal: SIGXCPU, or SIGKILL/SIGSEGV out of memory
        raise Refused(
            "Inspecting the file failed: qemu-img was stopped by a CPU or memory limit "
            f"(signal {-result.returncode}); it was refused."
        )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
        reason = reason.replace(f"'{options}'", "the file").removeprefix("qemu-img: ")
        raise Refused(f"qemu-img cannot read the file as {declared_format}: {reason[:500]}")
    try:
        info = json.loads(result.stdout)
    except ValueError as exc:
        raise Refused("qemu-img gave an unreadable answer about the file.") from exc
    if not isinstance(info, dict):
        raise Refused("qemu-img gave an unreadable answer about the file.")
    return info


def _check_before_qemu(path: Path, declared_format: str) -> None:
    """The checks in Python that come before qemu-img reads the file."""
    sniffed = sniff_format(path)
    if declared_format == "raw":
        if sniffed is not None:
            raise Refused(
                f"The file is a {sniffed} image, not raw: declare its real format "
                "(or convert it to raw first)."
            )
    elif declared_format == "qcow2":
        try:
            qcow2_header.check(path)
        except qcow2_header.HeaderRefused as exc:
            raise Refused(exc.message) from exc
    else:
        raise Refused(f"Images in {declared_format} format are not accepted.")


def inspect(path: Path, declared_format: str, config: InspectionConfig | None = None) -> Inspection:
    """Check that the file is an image of `declared_format` that stands alone. Refused
    otherwise, with a message for the image's owner; qemu-img runs only on a file the
    Python checks passed, and only confined."""
    _check_before_qemu(path, declared_format)
    info = _qemu_img_info(path, declared_format, config or InspectionConfig())
    detected = info.get("format")
    if detected != declared_format:
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


#: How an export's file is erased (images.services.exports; DESIGN §8, like a volume's).
ERASED_BY_OVERWRITE = (
    "every byte of the file overwritten in place with zeros and synced, then unlinked"
)


def erase_file(path: Path) -> bool:
    """Overwrite every byte of the file with zeros, sync it to disk, then unlink it, so its
    space never reaches its next user with the data (the way volumes are erased). Missing:
    False (nothing to erase); erased: True. Interrupted, it can be called again."""
    try:
        out = open(path, "r+b")  # noqa: SIM115 - closed below, after the sync
    except FileNotFoundError:
        return False
    with out:
        size = os.fstat(out.fileno()).st_size
        zeros = bytes(CHUNK_BYTES)
        written = 0
        while written < size:
            written += out.write(zeros[: min(CHUNK_BYTES, size - written)])
        out.flush()
        os.fsync(out.fileno())
    path.unlink(missing_ok=True)
    return True
