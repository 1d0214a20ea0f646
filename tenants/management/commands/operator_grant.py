"""`manage.py operator_grant USERNAME`

Make an existing account an operator: staff with the `tenants.operate_cloud` permission
(`is_staff` alone opens only the admin's door, review L7). Refused for tenant members.
Audited as `operator.grant`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from iaas.audit import Actor
from iaas.errors import DomainError
from tenants import services


class Command(BaseCommand):
    help = "Make an existing account an operator (staff + tenants.operate_cloud)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            services.operator_grant(
                actor=Actor.system("manage.py operator_grant"), username=options["username"]
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{options['username']} is now an operator.")
