"""`manage.py backup_manifest DIR --taken-at WHEN [--stores a,b]`, run by scripts/backup.sh
after `pg_dump -Fc` wrote DIR/database.dump: copies the image stores into DIR/images/ and
writes DIR/manifest.json and DIR/SHA256SUMS (compute.services.backups)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compute.services.backups import BackupError, manifest_write


class Command(BaseCommand):
    help = "Copy the image stores beside a pg_dump and write the backup's manifest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="the backup directory (holds the dump)")
        parser.add_argument(
            "--taken-at", required=True, help="when pg_dump started (ISO 8601, UTC)"
        )
        parser.add_argument(
            "--stores", default="", help="only these image stores (comma-separated names)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stores = [name for name in options["stores"].split(",") if name] or None
        try:
            manifest = manifest_write(
                options["directory"], taken_at=options["taken_at"], stores=stores
            )
        except (BackupError, ValueError, OSError) as exc:
            raise CommandError(f"backup incomplete: {exc}") from exc
        head = manifest["audit_chain_head"]
        files = sum(len(store["files"]) for store in manifest["image_stores"])
        self.stdout.write(
            f"backup {options['directory']}: database dump sha256 "
            f"{manifest['database']['sha256']}, {files} image file(s) from "
            f"{len(manifest['image_stores'])} store(s), audit chain head event "
            f"{head['event_id']} ({head['events']} events)"
        )
