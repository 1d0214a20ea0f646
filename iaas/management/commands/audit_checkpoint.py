"""`manage.py audit_checkpoint`: sign the audit chain's head now and append it to the
checkpoint file (beat does this every few minutes: task `iaas.audit_checkpoint`)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from iaas.audit.checkpoints import CheckpointError, checkpoint_file, checkpoint_write
from iaas.audit.signing import SigningKeyError


class Command(BaseCommand):
    help = "Sign the audit chain's head and append the checkpoint to the checkpoint file."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoint = checkpoint_write()
        except (CheckpointError, SigningKeyError) as exc:
            raise CommandError(str(exc)) from exc
        if checkpoint is None:
            self.stdout.write("the chain has not moved since the last checkpoint")
            return
        self.stdout.write(
            f"checkpoint #{checkpoint.seq}: {checkpoint.events} events up to event "
            f"{checkpoint.event_id}, appended to {checkpoint_file()}"
        )
