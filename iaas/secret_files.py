"""Files that hold secrets the database must never hold (the audit signing key, the volume
master key): made once, readable by their owner only, refused when anyone else may read them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SecretFileError(Exception):
    """A secret file cannot be read, or is readable by its group or by others."""


def write_new_secret_file(path: Path, data: bytes) -> bool:
    """Write `data` to a new file `path`, mode 0600, its folder made 0700 if missing. The
    file exists already (another process made it first): False, nothing written — theirs
    stands, so two processes starting together end with one key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def read_secret_file(path: Path, what: str) -> bytes:
    """The bytes of the secret file `path` (`what` names it in errors). SecretFileError when
    it cannot be read or its mode lets its group or others in (it must be 0600 or tighter)."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SecretFileError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(
            f"the {what} {path} is readable by others (mode {mode & 0o777:o}); make it 0600"
        )
    return data
