"""`manage.py restore_finish (--manifest DIR/manifest.json | --point-in-time WHEN)
[--no-reconcile]`, run by scripts/restore.sh once `pg_restore` has put the dump back: signs
a `restore` checkpoint on the restored audit chain, destroys again the keys shredded since
the backup (the shred ledger), puts the image files back (checked against their SHA-256)
and runs one reconciler round (compute.services.backups). After a point-in-time recovery,
`--point-in-time` instead (no image files then: docs/operations.md, "Backups and restore").
Exit 1 with the reason when a step cannot be done; run it again once fixed (it is safe to).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compute.services.backups import BackupError, restore_finish
from iaas.audit.checkpoints import CheckpointError
from iaas.audit.signing import SigningKeyError
from volumes.services.shred_ledger import ShredLedgerError


class Command(BaseCommand):
    help = "Finish a restore: restore checkpoint, shreds re-applied, image files, reconciler."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--manifest", type=Path, help="the manifest.json of the backup restored"
        )
        source.add_argument(
            "--point-in-time",
            metavar="WHEN",
            help="a point-in-time recovery (base backup and WAL) to WHEN, the "
            "recovery_target_time: the restore checkpoint is signed on the head as it is",
        )
        parser.add_argument(
            "--no-reconcile",
            action="store_true",
            help="Do not run the reconciler round (then run it: beat's compute.reconcile).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = restore_finish(
                options["manifest"],
                restored_from=options["point_in_time"] or "",
                reconcile=not options["no_reconcile"],
            )
        except (BackupError, CheckpointError, SigningKeyError, ShredLedgerError) as exc:
            raise CommandError(f"restore NOT finished: {exc}") from exc
        if report.checkpoint_seq:
            first, last = report.superseded
            superseded = f"checkpoints #{first} to #{last}" if first <= last else "no checkpoint"
            self.stdout.write(
                f"restore checkpoint #{report.checkpoint_seq} signed; {superseded} superseded"
            )
        else:
            self.stdout.write("restore checkpoint already signed by an earlier run")
        for slug, versions in report.shreds_reapplied.items():
            self.stdout.write(f"tenant {slug}: shred re-applied, key version(s) {versions}")
        self.stdout.write(f"{report.images_restored} image file(s) put back")
        if report.reconciled is None:
            self.stdout.write(
                "reconciler NOT run: beat runs it every minute (compute.reconcile), or run "
                "this command again without --no-reconcile"
            )
        else:
            self.stdout.write(f"reconciler round: {report.reconciled}")
        if report.image_problems:
            for problem in report.image_problems:
                self.stderr.write(f"image store: {problem}")
            raise CommandError(
                f"restore finished, but {len(report.image_problems)} image file(s) are missing "
                "or differ (listed above)"
            )
