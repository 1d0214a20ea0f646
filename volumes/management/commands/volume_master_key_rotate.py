"""`manage.py volume_master_key_rotate [--new-key-file PATH]`

Replace the volume master key (volumes.crypto) by a new random one: every live tenant key is
re-wrapped by it (volumes.services.master_key); no volume changes, no host is involved.

- Key from a file (`ANDROMEDE_VOLUME_MASTER_KEY_FILE`, the default): the new key is made in
  `<file>.next` (0600), the tenant keys re-wrapped, then `<file>.next` replaces the file
  (an atomic rename: workers read the file at each use) and a second pass re-wraps any key
  made in between. Interrupted, run it again: it finishes with the same new key.
- Key from the environment (`ANDROMEDE_VOLUME_MASTER_KEY`): `--new-key-file PATH` is
  required; the new key is written there, and until the environment holds it (restart the
  API and workers with it) encrypted volumes cannot be opened: plan a maintenance window.

The old key is gone from the file afterwards: keep a copy (offline) as long as you may
restore a database backup taken before the rotation (docs/operations.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from iaas.audit import Actor
from volumes.crypto import VolumeKeyError, key_id, master_key, new_master_key_file
from volumes.services.master_key import master_key_rotate

ACTOR = Actor.system("manage.py volume_master_key_rotate")


class Command(BaseCommand):
    help = "Re-wrap every tenant key of encrypted volumes by a new volume master key; audited."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--new-key-file",
            type=Path,
            help="where to write the new key (required when the key is in the environment)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from_environment = bool(getattr(settings, "VOLUME_MASTER_KEY", None))
        key_file = Path(settings.VOLUME_MASTER_KEY_FILE)
        next_file: Path | None = options["new_key_file"]
        if from_environment and next_file is None:
            raise CommandError(
                "The master key comes from ANDROMEDE_VOLUME_MASTER_KEY: give --new-key-file "
                "PATH for the new one. Nothing changed."
            )
        next_file = next_file or key_file.with_name(key_file.name + ".next")
        resumed = next_file.exists()  # an interrupted rotation's new key: kept, used again
        try:
            old = master_key()
            new = new_master_key_file(next_file)
            changed = master_key_rotate(actor=ACTOR, old=old, new=new)
            if not from_environment:
                os.replace(next_file, key_file)
                changed += master_key_rotate(actor=ACTOR, old=old, new=new)
        except VolumeKeyError as exc:
            if not resumed and next_file.exists() and not from_environment:
                next_file.unlink()  # made by this run, protecting nothing yet
            raise CommandError(f"Refused, nothing changed: {exc}") from exc
        self.stdout.write(
            f"Master key {key_id(old)} → {key_id(new)}: {changed} tenant key(s) re-wrapped."
        )
        if from_environment:
            self.stdout.write(
                f"Now set ANDROMEDE_VOLUME_MASTER_KEY to the content of {next_file} and restart "
                "the API and the workers: until then encrypted volumes cannot be opened."
            )
