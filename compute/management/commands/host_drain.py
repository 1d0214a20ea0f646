"""`manage.py host_drain HOST`: mark the host draining and queue the cold migration of each
of its instances to other hosts (what POST /api/v1/admin/hosts/{id}/drain does)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from compute.services.migrate import host_drain
from hosts.models import Host
from iaas.audit import Actor
from iaas.errors import DomainError


class Command(BaseCommand):
    help = "Drain a host: no new placements, its instances cold-migrated to other hosts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("host", help="the host's name")

    def handle(self, *args: Any, **options: Any) -> None:
        host = Host.objects.filter(name=options["host"]).first()
        if host is None:
            raise CommandError(f"No host named {options['host']!r}.")
        try:
            result = host_drain(actor=Actor.system("manage.py host_drain"), host=host)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"host {host.name} draining: {len(result.operations)} migration(s) queued"
        )
        for operation in result.operations:
            self.stdout.write(f"  instance {operation.target_id}: operation {operation.pk}")
        for refused in result.refused:
            self.stdout.write(
                f"  instance {refused['instance']} not moved: {refused['code']}: "
                f"{refused['message']}"
            )
        if result.refused:
            raise CommandError(f"{len(result.refused)} instance(s) cannot be moved (see above).")
