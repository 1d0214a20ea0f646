"""Backups and the restore drill (docs/operations.md, "Backups and restore").

`scripts/backup.sh DIR` dumps PostgreSQL (`pg_dump -Fc`) into DIR/database.dump, then runs
`manage.py backup_manifest DIR`: `manifest_write` copies the image stores
(images.services.backup), reads the audit chain's head *from the dump* (so it is the head the
dump holds, whatever was written meanwhile) and writes DIR/manifest.json and DIR/SHA256SUMS.

`scripts/restore.sh DIR` checks SHA256SUMS, `pg_restore`s the dump into an empty database,
then runs `manage.py restore_finish --manifest DIR/manifest.json`: `restore_finish` signs a
`restore` checkpoint on the restored chain (iaas.audit.restore), destroys again the keys
shredded since the backup (volumes.services.shred.shred_ledger_reapply), puts the image files
back (checked against their SHA-256) and runs one reconciler round.

Never in a backup: the volume master key and the audit signing key (nor the shred ledger or
the checkpoints, which must outlive the database): a backup holding the master key holds
every encrypted volume in clear, and one holding the signing key could bless any chain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compute.services.reconciler import reconcile_all
from iaas.audit import Actor, audit_record
from iaas.audit.checkpoints import checkpoint_write
from iaas.audit.restore import ChainHead, chain_head_now, restore_checkpoint_write
from iaas.models import AuditChainHead, AuditEvent
from images.services.backup import file_sha256, stores_back_up, stores_restore
from volumes.models import TenantKey
from volumes.services.shred import shred_ledger_reapply

MANIFEST = "manifest.json"
DUMP = "database.dump"
SUMS = "SHA256SUMS"
FORMAT = 1
NOT_INCLUDED = {
    "volume_master_key": "never backed up with the database: with it, a dump opens every "
    "encrypted volume; keep it in the secrets manager (docs/operations.md, "
    "'Volume encryption keys')",
    "audit_signing_key": "never backed up with the database: it could sign a rewritten chain; "
    "auditors keep the public key",
    "audit_checkpoints_and_shred_ledger": "kept outside the database and outside its "
    "backups, so a restore can be told from tampering and re-apply later shreds",
}
PG_RESTORE_TIMEOUT = 300
PG_RESTORE = shutil.which("pg_restore") or "/usr/bin/pg_restore"


class BackupError(Exception):
    """A backup or restore step cannot be done; the message says what to do."""


def audit_head_in_dump(dump: Path) -> ChainHead:
    """The audit chain's head as the dump holds it: the row of the chain-head table, read
    with `pg_restore --data-only`, and the number of events up to it (counted in the live
    database: events up to the head never change, and no event can get a smaller id later,
    as writers take the head's lock before numbering theirs)."""
    table = AuditChainHead._meta.db_table
    try:
        done = subprocess.run(  # noqa: S603 - an argument list, no shell
            [PG_RESTORE, "--data-only", f"--table={table}", "--file=-", str(dump)],
            capture_output=True, text=True, timeout=PG_RESTORE_TIMEOUT, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"cannot read {dump} with pg_restore: {exc}") from exc
    if done.returncode != 0:
        raise BackupError(f"pg_restore cannot read {dump}: {done.stderr.strip()[:500]}")
    row = _copy_row(done.stdout, table)
    if row is None or row.get("last_event_id") in (None, r"\N"):
        return ChainHead(None, row["last_hash"] if row else "0" * 64, 0)
    event_id = int(row["last_event_id"])
    events = AuditEvent.objects.filter(pk__lte=event_id).count()
    return ChainHead(event_id, row["last_hash"], events)


def _copy_row(sql: str, table: str) -> dict[str, str] | None:
    """The first row of `COPY <schema>.<table> (columns) FROM stdin;` in pg_restore's output."""
    lines = sql.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("COPY ") and f".{table} (" in line:
            columns = line[line.index("(") + 1 : line.index(")")].split(", ")
            values = lines[number + 1]
            if values == "\\.":
                return None
            return dict(zip(columns, values.split("\t"), strict=True))
    return None


def manifest_write(backup_dir: Path, *, taken_at: str, stores: list[str] | None) -> dict[str, Any]:
    """Copy the image stores into `backup_dir` and write its manifest.json and SHA256SUMS
    (`sha256sum --check` format) beside the dump pg_dump left there."""
    dump = backup_dir / DUMP
    if not dump.is_file():
        raise BackupError(f"{dump} does not exist: run pg_dump first (scripts/backup.sh)")
    head = audit_head_in_dump(dump)
    copies = stores_back_up(backup_dir, stores)
    dump_sha256 = file_sha256(dump)
    manifest = {
        "format": FORMAT,
        "taken_at": taken_at,
        "database": {"file": DUMP, "format": "pg_dump custom (-Fc)", "sha256": dump_sha256,
                     "bytes": dump.stat().st_size},
        "audit_chain_head": {"event_id": head.event_id, "event_hash": head.event_hash,
                             "events": head.events},
        "image_stores": [copy.as_manifest() for copy in copies],
        "master_key_ids_needed": sorted(
            set(TenantKey.objects.filter(destroyed_at=None).values_list("master_key_id", flat=True))
        ),
        "not_included": NOT_INCLUDED,
    }  # fmt: skip
    sums = [f"{dump_sha256}  {DUMP}"]
    sums += [f"{f['sha256']}  {f['path']}" for copy in copies for f in copy.files]
    _write_new(backup_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    _write_new(backup_dir / SUMS, "\n".join(sums) + "\n")
    return manifest


def _write_new(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def manifest_read(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read the manifest {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not an Andromède backup manifest (format {FORMAT})")
    return manifest


@dataclass
class RestoreReport:
    checkpoint_seq: int = 0
    superseded: tuple[int, int] = (0, 0)
    shreds_reapplied: dict[str, list[int]] = field(default_factory=dict)
    images_restored: int = 0
    image_problems: list[str] = field(default_factory=list)
    reconciled: dict[str, object] | None = None


def restore_finish(
    manifest_path: Path | None, *, restored_from: str = "", reconcile: bool
) -> RestoreReport:
    """After `pg_restore` of the manifest's dump: sign the restore checkpoint (the restored
    head must be the manifest's), re-apply the shred ledger, put the image files back, run a
    reconciler round (if `reconcile`). Without a manifest (a point-in-time recovery from a
    base backup and WAL), the restore checkpoint is signed on the database's head as it is,
    once proven against the checkpoints before it, and `restored_from` names the recovery
    target. Safe to run again: the checkpoint is not signed twice for one restore; shredded
    keys stay destroyed; files already in place are kept. CheckpointError, ShredLedgerError
    or BackupError stop it with the reason."""
    manifest: dict[str, Any] = {"image_stores": []}
    if manifest_path is not None:
        manifest = manifest_read(manifest_path)
        recorded = manifest["audit_chain_head"]
        expected = ChainHead(recorded["event_id"], recorded["event_hash"], recorded["events"])
        restored_from, marker = manifest["taken_at"], file_sha256(manifest_path)
    elif restored_from:
        expected, marker = chain_head_now(), f"point-in-time {restored_from}"
    else:
        raise BackupError("give the backup's manifest, or the point in time recovered to")
    report = RestoreReport()
    actor = Actor.system("manage.py restore_finish")
    if not AuditEvent.objects.filter(action="system.restore", details__marker=marker).exists():
        checkpoint = restore_checkpoint_write(expected=expected, restored_from=restored_from)
        report.checkpoint_seq = checkpoint.seq
        report.superseded = (checkpoint.supersedes_after + 1, checkpoint.seq - 1)
        audit_record(
            actor=actor,
            action="system.restore",
            details={
                "restored_from": restored_from, "marker": marker,
                "restored_head": {"event_id": expected.event_id,
                                  "event_hash": expected.event_hash, "events": expected.events},
                "restore_checkpoint": checkpoint.seq,
            },
        )  # fmt: skip
    for tenant, outcome in shred_ledger_reapply(actor=actor):
        report.shreds_reapplied[tenant.slug] = outcome.key_versions
    checkpoint_write()  # anchors the restore's own events
    if manifest_path is not None:
        report.images_restored, report.image_problems = stores_restore(
            manifest_path.parent, manifest["image_stores"]
        )
    if reconcile:
        report.reconciled = reconcile_all()
    return report
