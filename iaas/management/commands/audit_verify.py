"""`manage.py audit_verify`: check the audit chain; exit 1 naming the first broken link."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from iaas.audit.verify import verify_chain


class Command(BaseCommand):
    help = "Verify the hash chain of the audit log and name the first broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if not report.ok:
            raise CommandError(
                f"audit chain BROKEN at event {report.broken_event_id}: {report.reason} "
                f"({report.checked} events verified before it)"
            )
        self.stdout.write(f"audit chain OK: {report.checked} events verified")
