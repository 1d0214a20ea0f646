"""Quotas: limits per tenant and resource, usage counted from the resource rows themselves.

Apps register each countable resource with `register_resource` (in their AppConfig.ready).
`quota_enforce` must run inside the transaction that creates the resource: it locks the
tenant row, so concurrent creators for one tenant are serialised and usage can never pass a
limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from iaas.errors import InvalidRequest, QuotaExceeded
from tenants.models import Quota, Tenant

UNLIMITED = -1
UsageCounter = Callable[[Tenant], int]
_COUNTERS: dict[str, UsageCounter] = {}


@dataclass(frozen=True)
class QuotaLine:
    resource: str
    limit: int
    usage: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit == UNLIMITED else max(self.limit - self.usage, 0)


def register_resource(resource: str, counter: UsageCounter) -> None:
    """Declare a quota resource and how to count a tenant's current usage of it."""
    if resource not in settings.DEFAULT_QUOTAS:
        raise ValueError(f"quota resource {resource!r} has no default in settings.DEFAULT_QUOTAS")
    _COUNTERS[resource] = counter


def resources() -> list[str]:
    return sorted(_COUNTERS)


def check_resource(resource: str) -> None:
    if resource not in _COUNTERS:
        raise InvalidRequest(
            f"Unknown quota resource {resource!r}.",
            code="unknown_resource",
            details={"known": resources()},
        )


def limit_for(tenant: Tenant, resource: str) -> int:
    explicit = Quota.objects.filter(tenant=tenant, resource=resource).values_list(
        "limit", flat=True
    )
    for value in explicit:
        return value
    return int(settings.DEFAULT_QUOTAS[resource])


def quota_lines(tenant: Tenant) -> list[QuotaLine]:
    explicit = dict(Quota.objects.filter(tenant=tenant).values_list("resource", "limit"))
    return [
        QuotaLine(
            resource=resource,
            limit=explicit.get(resource, int(settings.DEFAULT_QUOTAS[resource])),
            usage=_COUNTERS[resource](tenant),
        )
        for resource in resources()
    ]


def quota_enforce(tenant: Tenant, resource: str, amount: int = 1) -> None:
    """Refuse with QuotaExceeded if adding `amount` would pass the tenant's limit.

    Locks the tenant row until the caller's transaction ends; call it before inserting the
    new rows, in the same transaction.
    """
    check_resource(resource)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quota_enforce must run inside the creating transaction")
    Tenant.objects.select_for_update().only("pk").get(pk=tenant.pk)
    limit = limit_for(tenant, resource)
    if limit == UNLIMITED:
        return
    usage = _COUNTERS[resource](tenant)
    if usage + amount > limit:
        raise QuotaExceeded(
            f"Quota exceeded for {resource}: {usage} in use, limit {limit}, {amount} requested.",
            details={"resource": resource, "limit": limit, "usage": usage, "requested": amount},
        )
