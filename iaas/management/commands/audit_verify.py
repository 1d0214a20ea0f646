"""`manage.py audit_verify`: check the audit chain and that it still matches every signed
checkpoint; exit 1 naming the first broken link or the checkpoint it no longer matches. A
signed `restore` checkpoint (iaas.audit.restore) supersedes the checkpoints between the
backup it restored and itself: the chain must match it and every checkpoint before the
backup instead."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from iaas.audit.checkpoints import checkpoint_file, checkpoints_check
from iaas.audit.verify import verify_chain
from iaas.models import AuditEvent, AuditVerification


class Command(BaseCommand):
    help = (
        "Verify the hash chain of the audit log against the signed checkpoints kept outside "
        "the database, and name the first broken link."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--require-checkpoint",
            action="store_true",
            help="Fail when there is no checkpoint to verify against (an unanchored chain).",
        )
        parser.add_argument(
            "--max-unanchored-age",
            type=int,
            default=None,
            metavar="SECONDS",
            help="Fail when an event older than this is not covered by a checkpoint yet "
            "(checkpoints stopped: is beat running iaas.audit_checkpoint?).",
        )
        parser.add_argument(
            "--checkpoints",
            type=Path,
            default=None,
            help="The checkpoint file to verify against (default: AUDIT_CHECKPOINT_FILE), "
            "e.g. the copy kept on the log host.",
        )
        parser.add_argument(
            "--by",
            default="audit_verify",
            help="Who asked, as the operator console shows it (default: audit_verify).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Verify, and keep the outcome (AuditVerification) for the operator console."""
        self._checked = 0
        try:
            summary = self._verify(options)
        except CommandError as error:
            AuditVerification.objects.create(
                ok=False, events_checked=self._checked, summary=str(error)[:500], by=options["by"]
            )
            raise
        AuditVerification.objects.create(
            ok=True, events_checked=self._checked, summary=summary[:500], by=options["by"]
        )

    def _verify(self, options: dict[str, Any]) -> str:
        path = options["checkpoints"] or checkpoint_file()
        found = checkpoints_check(path)
        if found.problem:
            raise CommandError(f"audit checkpoints BROKEN: {found.problem}")
        if found.newest is None and options["require_checkpoint"]:
            raise CommandError(
                f"audit chain NOT ANCHORED: no checkpoint in {path} "
                "(run manage.py audit_checkpoint, or check ANDROMEDE_AUDIT_CHECKPOINT_FILE)"
            )
        report = verify_chain(found.anchors)
        self._checked = report.checked
        if not report.ok:
            raise CommandError(
                f"audit chain BROKEN at event {report.broken_event_id}: {report.reason} "
                f"({report.checked} events verified before it)"
            )
        newest = found.newest
        anchored_up_to = newest.event_id if newest is not None else None
        self._check_unanchored_age(anchored_up_to, options["max_unanchored_age"])
        ok = f"audit chain OK: {report.checked} events verified"
        self.stdout.write(ok)
        if newest is None:
            self.stdout.write(f"no checkpoint in {path}: the chain is not anchored")
            return f"{ok}; not anchored (no checkpoint)"
        for restore in found.restores:
            first, last = restore.supersedes_after + 1, restore.seq - 1
            superseded = f"checkpoints #{first} to #{last}" if first <= last else "no checkpoint"
            self.stdout.write(
                f"restored: checkpoint #{restore.seq} ({restore.created_at}) restored the chain "
                f"to event {restore.event_id} from the backup of {restore.restored_from}; "
                f"{superseded} superseded"
            )
        after = report.checked - newest.events
        self.stdout.write(
            f"anchored: {report.anchors_checked} checkpoints verified, the newest #{newest.seq} "
            f"({newest.created_at}, key {newest.key_id}) covers {newest.events} events up to "
            f"event {newest.event_id}; {after} newer events are not anchored yet"
        )
        return f"{ok}; anchored up to event {newest.event_id} ({after} newer not anchored yet)"

    def _check_unanchored_age(self, anchored_up_to: int | None, limit: int | None) -> None:
        if limit is None:
            return
        events = AuditEvent.objects.order_by("id")
        if anchored_up_to is not None:
            events = events.filter(id__gt=anchored_up_to)
        oldest = events.first()
        if oldest is None:
            return
        age = (timezone.now() - oldest.created_at).total_seconds()
        if age > limit:
            raise CommandError(
                f"audit chain NOT ANCHORED in time: event {oldest.id} was written {age:.0f} s "
                f"ago and no checkpoint covers it yet (limit {limit} s); is beat running "
                "iaas.audit_checkpoint, and can it read the signing key?"
            )
