"""Tenant-scoped reads of compute resources, all through `tenants.selectors.tenant_scoped`."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from compute.models import Flavor, Instance, KeyPair, ServerGroup
from compute.states import CONSOLE_STATUSES
from hosts.residency import Holding
from network.models import FixedIP
from tenants.models import Tenant
from tenants.selectors import tenant_scoped

logger = logging.getLogger(__name__)


def keypair_list(tenant: Tenant) -> QuerySet[KeyPair]:
    return tenant_scoped(KeyPair.objects.all(), tenant)


def keypair_find(tenant: Tenant, name: str) -> KeyPair | None:
    return keypair_list(tenant).filter(name=name).first()


def server_group_list(tenant: Tenant) -> QuerySet[ServerGroup]:
    return tenant_scoped(ServerGroup.objects.all(), tenant)


def server_group_find(tenant: Tenant, ref: str) -> ServerGroup | None:
    """The tenant's server group by id or name (None if it has none such)."""
    groups = server_group_list(tenant)
    try:
        return groups.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        return groups.filter(name=ref).first()


def flavor_list(tenant: Tenant) -> QuerySet[Flavor]:
    """Flavors this tenant may use: public ones and private ones shared with it."""
    return (
        Flavor.objects.filter(disabled=False)
        .filter(Q(is_public=True) | Q(access=tenant))
        .distinct()
    )


def flavor_find(tenant: Tenant, ref: str) -> Flavor | None:
    """A flavor this tenant may use, by id or name (None if it has none such)."""
    flavors = flavor_list(tenant)
    try:
        return flavors.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        return flavors.filter(name=ref).first()


def instance_list(tenant: Tenant) -> QuerySet[Instance]:
    """The tenant's instances, deleted ones excluded, each annotated with `ip`: the address
    of its port (a port names its instance by id: network never imports compute)."""
    address = (
        FixedIP.objects.filter(port__device_id=OuterRef("pk"))
        .order_by("port__device_index", "port__created_at", "pk")
        .values("ip")[:1]
    )
    return (
        tenant_scoped(Instance.objects.all(), tenant)
        .exclude(status=Instance.Status.DELETED)
        .select_related("flavor", "keypair", "host__zone")
        .annotate(ip=Subquery(address))
    )


@dataclass(frozen=True)
class ConsoleCapture:
    """The console's tail as a worker read it, and when (None: never read yet)."""

    output: str
    captured_at: datetime | None

    def age_seconds(self, now: datetime | None = None) -> float | None:
        if self.captured_at is None:
            return None
        return max(0.0, ((now or timezone.now()) - self.captured_at).total_seconds())


def console_cache_key(instance_id: uuid.UUID | str) -> str:
    return f"console:{instance_id}"


def console_capture(instance_id: uuid.UUID | str) -> ConsoleCapture:
    """The last capture pushed for the instance; empty if none (or the cache cannot say:
    a read must never fail because Redis does)."""
    try:
        stored: dict[str, Any] | None = cache.get(console_cache_key(instance_id))
    except Exception as exc:  # the cache is down: the tenant sees no capture, never a 500
        logger.warning("console cache unavailable: %s", exc)
        stored = None
    if not stored:
        return ConsoleCapture(output="", captured_at=None)
    return ConsoleCapture(
        output=str(stored.get("output", "")),
        captured_at=datetime.fromisoformat(stored["captured_at"]),
    )


def instance_console(instance: Instance) -> ConsoleCapture:
    """The tail of the serial console as a worker last pushed it, and when (M11: this reads
    no hypervisor); empty before the first boot or before any worker pushed it."""
    if instance.host is None or instance.status not in CONSOLE_STATUSES:
        return ConsoleCapture(output="", captured_at=None)
    return console_capture(instance.pk)


def instance_holdings(tenant: Tenant) -> list[Holding]:
    """The tenant's instances with the zone their disks lie in (for "where is my data")."""
    instances = (
        tenant_scoped(Instance.objects.select_related("host"), tenant)
        .exclude(status=Instance.Status.DELETED)
        .order_by("name", "id")
    )
    return [
        Holding(
            id=str(instance.pk),
            name=instance.name,
            status=instance.status,
            zone_id=instance.host.zone_id if instance.host is not None else None,
        )
        for instance in instances
    ]


def instance_count_by_tenant() -> dict[Any, int]:
    """Operators' read: how many live instances each tenant has (tenant id → count)."""
    from django.db.models import Count

    rows = (
        Instance.objects.exclude(status=Instance.Status.DELETED)
        .values("tenant_id")
        .annotate(n=Count("id"))
    )
    return {row["tenant_id"]: row["n"] for row in rows}
