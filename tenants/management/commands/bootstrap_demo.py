"""`manage.py bootstrap_demo`: the embedded default's accounts.

Creates, if missing, an operator account, a demo tenant and its admin user with an API token,
and prints the credentials of what it created, once: passwords and tokens are not stored in
clear anywhere, so they cannot be shown again. `--reset` sets new passwords and issues a new
demo token (revoking the previous demo tokens).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from iaas.audit import Actor
from tenants import mfa_enrolment, services
from tenants.models import ApiToken, Membership, Role, Tenant

User = get_user_model()
DEMO_TENANT = "demo"
DEMO_USER = "demo"
OPERATOR = "operator"
DEMO_TOKEN_NAME = "demo token (make run)"  # noqa: S105 - a label, not a secret


def _second_factor(actor: Actor, user: Any) -> list[str]:
    """Operators and tenant admins sign in with a second factor: enrol one and show it."""
    enrolment, codes = mfa_enrolment.totp_enrol_for_bootstrap(actor=actor, user=user)
    return [
        f"                   second factor (TOTP secret): {enrolment.secret}",
        f"                   e.g. oathtool --totp -b {enrolment.secret}  ·  {enrolment.uri}",
        f"                   recovery codes: {' '.join(codes)}",
    ]


class Command(BaseCommand):
    help = "Create the demo tenant, demo user and operator account; print new credentials once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--reset", action="store_true", help="new passwords and demo token")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("bootstrap_demo")
        reset = options["reset"]
        lines: list[str] = []

        operator, created = User.objects.get_or_create(
            username=OPERATOR, defaults={"is_staff": True, "is_superuser": True}
        )
        if created or reset:
            password = secrets.token_urlsafe(12)
            operator.set_password(password)
            operator.save()
            lines.append(
                f"  operator admin   http://127.0.0.1:8000/admin/   {OPERATOR} / {password}"
            )
            lines.extend(_second_factor(actor, operator))

        tenant = Tenant.objects.filter(slug=DEMO_TENANT).first()
        if tenant is None:
            tenant = services.tenant_create(actor=actor, name="Demo", slug=DEMO_TENANT)

        demo, created = User.objects.get_or_create(username=DEMO_USER)
        if created or reset:
            password = secrets.token_urlsafe(12)
            demo.set_password(password)
            demo.save()
            lines.append(
                f"  tenant portal    http://127.0.0.1:8000/         {DEMO_USER} / {password}"
            )
            lines.extend(_second_factor(actor, demo))
        if not Membership.objects.filter(user=demo, tenant=tenant).exists():
            services.membership_add(actor=actor, tenant=tenant, username=DEMO_USER, role=Role.ADMIN)

        live_tokens = ApiToken.objects.filter(
            user=demo, tenant=tenant, name=DEMO_TOKEN_NAME, revoked_at__isnull=True
        )
        if reset:
            for old in live_tokens:
                services.token_revoke(actor=actor, token=old)
        if reset or not live_tokens.exists():
            _, secret = services.token_create(
                actor=actor, user=demo, tenant=tenant, name=DEMO_TOKEN_NAME, role=Role.ADMIN
            )
            lines.append(f"  demo API token   {secret}")
            lines.append(
                f"  try:  curl -H 'Authorization: Bearer {secret}' http://127.0.0.1:8000/api/v1/keypairs"
            )

        if lines:
            self.stdout.write("")
            self.stdout.write("Credentials (shown once; not stored in clear anywhere):")
            for line in lines:
                self.stdout.write(line)
            self.stdout.write("")
        else:
            self.stdout.write(
                "Demo tenant and accounts exist; their credentials were printed when they were "
                "created. New ones: `make reset-demo` (manage.py bootstrap_demo --reset)."
            )
