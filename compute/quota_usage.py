"""How compute resources count against quotas: always from the resource rows themselves."""

from __future__ import annotations

from compute.models import KeyPair
from tenants.models import Tenant


def keypairs_in_use(tenant: Tenant) -> int:
    return KeyPair.objects.filter(tenant=tenant).count()
