"""`manage.py tenant_shred TENANT_SLUG`

Crypto-shred a tenant (volumes.services.shred): refused (exit 1, nothing changed) while any
of its volumes is attached or busy; otherwise its volume keys are destroyed, its encrypted
volumes marked so they are never opened again, `tenant.shred` audited, and its secrets
undefined on every host. A host that could not be reached: exit 2, the keys are destroyed
all the same; run the command again once the host is back to sweep it. Each shred is also
written to the shred ledger (settings.SHRED_LEDGER_FILE) before it commits, so a restore
from an older backup destroys the keys again (`restore_finish`). What this means
for database backups: docs/operations.md, "Crypto-shredding".
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from iaas.audit import Actor
from iaas.errors import DomainError
from tenants.models import Tenant
from volumes.services.shred import tenant_secrets_sweep, tenant_shred
from volumes.services.shred_ledger import ShredLedgerError


class Command(BaseCommand):
    help = "Destroy a tenant's volume encryption keys (crypto-shredding); audited."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("tenant", help="the tenant's slug")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        try:
            outcome = tenant_shred(actor=Actor.system("manage.py tenant_shred"), tenant=tenant)
        except (DomainError, ShredLedgerError) as exc:
            raise CommandError(f"Refused, nothing changed: {exc}") from exc
        self.stdout.write(
            f"Tenant {tenant.slug}: {len(outcome.key_versions)} key(s) destroyed "
            f"(versions {outcome.key_versions or 'none'}), {len(outcome.volume_ids)} "
            "encrypted volume(s) can no longer be opened."
        )
        unreached = []
        for sweep in tenant_secrets_sweep(tenant):
            if sweep.error:
                unreached.append(sweep.host)
                self.stderr.write(f"host {sweep.host}: NOT swept: {sweep.error}")
            else:
                self.stdout.write(f"host {sweep.host}: {sweep.undefined} secret(s) undefined")
        if unreached:
            raise CommandError(
                f"The keys are destroyed, but host(s) {', '.join(unreached)} could not be "
                "swept of leftover secrets: run the command again once they are reachable.",
                returncode=2,
            )
