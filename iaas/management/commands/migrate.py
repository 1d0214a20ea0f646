"""`manage.py migrate`, as the tables' owner when DATABASE_MIGRATE_URL is set (review M2).

The application connects with DATABASE_URL, the runtime role; schema changes need the owner,
whose credentials only this command uses. After migrating, the post_migrate receiver
(iaas.db_roles.grant_after_migrate) grants the runtime role its rights on the new tables."""

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

from iaas.db_roles import RoleError, use_owner_credentials


class Command(DjangoMigrate):
    def handle(self, *args: Any, **options: Any) -> None:
        url = getattr(settings, "DATABASE_MIGRATE_URL", "")
        if url:
            try:
                use_owner_credentials(connections[options["database"]], url)
            except RoleError as exc:
                raise CommandError(str(exc)) from exc
        super().handle(*args, **options)
