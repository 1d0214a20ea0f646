"""`manage.py db_grant_runtime ROLE`: grant the application's runtime database role what it
needs and no more (iaas.db_roles); run as the tables' owner. `manage.py migrate` does it too
when ANDROMEDE_DATABASE_RUNTIME_ROLE (or DATABASE_MIGRATE_URL) is set."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from iaas.db_roles import RoleError, grant_runtime


class Command(BaseCommand):
    help = (
        "Grant the runtime role rights on every table, append-only on the audit log "
        "(PostgreSQL; run as the tables' owner)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="The role the application connects as.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            grant_runtime(connections[options["database"]], options["role"])
        except RoleError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"granted {options['role']}: read and write on the tables, append-only on the "
            "audit log, no TRUNCATE, not the owner"
        )
