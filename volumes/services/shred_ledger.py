"""The shred ledger: every crypto-shred, written down outside the database.

`tenant_shred` destroys a tenant's keys in the database only. A database restored from a dump
taken before the shred would bring the (wrapped) keys back, and with the master key they
would open the tenant's volumes again. So each shred also appends one JSON line to
`settings.SHRED_LEDGER_FILE` (default var/shred-ledger.jsonl, 0600, opened append-only, kept
beside the audit checkpoints and never in a database backup; each line is also logged, by
this module's logger whatever the log level, so the log shipper keeps a copy):

    {"at": "…", "tenant_id": "…", "tenant_slug": "acme", "key_ids": ["…"], "key_versions": [1]}

The line is written and fsynced *before* the shred's transaction commits, so a committed
shred is always in the ledger (a shred whose commit then failed is in it too: it was asked
for, and a restore destroys those keys as well). After a restore, `shred_ledger_reapply`
destroys again every key the ledger names that the restored database still holds live.
Key ids and versions are not secret: the ledger holds no key material.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from iaas.audit.checkpoints import locked_for_append

logger = logging.getLogger(__name__)


class ShredLedgerError(Exception):
    """The ledger cannot be written or read; the message names the file and the line."""


@dataclass(frozen=True)
class LedgerEntry:
    at: str
    tenant_id: str
    tenant_slug: str
    key_ids: tuple[str, ...]
    key_versions: tuple[int, ...]


def ledger_file() -> Path:
    return Path(settings.SHRED_LEDGER_FILE)


def ledger_append(
    *, at: datetime, tenant_id: uuid.UUID, tenant_slug: str, keys: Iterable[tuple[uuid.UUID, int]]
) -> None:
    """Append one shred (its tenant and the (id, version) of each key it destroys) and fsync
    it. Raises ShredLedgerError if that fails, so the caller's transaction rolls back: a
    shred never commits without its ledger line."""
    keys = list(keys)
    line = json.dumps(
        {
            "at": at.isoformat(),
            "tenant_id": str(tenant_id),
            "tenant_slug": tenant_slug,
            "key_ids": [str(key_id) for key_id, _ in keys],
            "key_versions": [version for _, version in keys],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    path = ledger_file()
    try:
        with locked_for_append(path) as fd:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
    except OSError as exc:
        raise ShredLedgerError(
            f"cannot append to the shred ledger {path}: {exc.strerror}; nothing was shredded"
        ) from exc
    logger.info(
        "shred ledger: tenant %s, key versions %s", tenant_slug, [v for _, v in keys],
        extra={"shred_ledger": line},
    )  # fmt: skip


def ledger_entries(path: Path | None = None) -> list[LedgerEntry]:
    """Every shred of the ledger, oldest first; [] when it does not exist (no shred yet).
    ShredLedgerError on a line that is not a shred: refuse rather than skip one."""
    path = path or ledger_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ShredLedgerError(f"cannot read the shred ledger {path}: {exc.strerror}") from exc
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(_parse(json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            raise ShredLedgerError(
                f"line {number} of the shred ledger {path} is not a shred ({exc}); repair it "
                "from its copy before restoring"
            ) from exc
    return entries


def _parse(data: Any) -> LedgerEntry:
    entry = LedgerEntry(
        at=str(data["at"]),
        tenant_id=str(uuid.UUID(data["tenant_id"])),
        tenant_slug=str(data["tenant_slug"]),
        key_ids=tuple(str(uuid.UUID(key_id)) for key_id in data["key_ids"]),
        key_versions=tuple(int(version) for version in data["key_versions"]),
    )
    if len(entry.key_ids) != len(entry.key_versions):
        raise ValueError("key_ids and key_versions differ in length")
    return entry
