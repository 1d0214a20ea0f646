"""`manage.py token_create USER [--tenant SLUG] [--role ROLE] [--name NAME] [--days N]`

Issue an API token from the command line (operators: omit --tenant for an operator token).
The secret is printed once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from iaas.audit import Actor
from iaas.errors import DomainError
from tenants import services
from tenants.models import Role, Tenant


class Command(BaseCommand):
    help = "Issue an API token; the secret is printed once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--tenant", help="tenant slug; omit for an operator token")
        parser.add_argument("--role", choices=[r.value for r in Role])
        parser.add_argument("--name", default="cli token")
        parser.add_argument("--days", type=int, default=90)

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user named {options['username']!r}")
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant with slug {options['tenant']!r}")
        try:
            _, secret = services.token_create(
                actor=Actor.system("manage.py token_create"),
                user=user,
                tenant=tenant,
                name=options["name"],
                role=options["role"],
                expires_at=timezone.now() + timedelta(days=options["days"]),
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(secret)
