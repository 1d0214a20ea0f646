"""Quotas: limits per tenant and resource, usage counted from the resource rows themselves.

Apps register each countable resource with `register_resource` (in their AppConfig.ready),
or several counted by one query with `register_resource_group`. `quota_enforce` (one
resource) and `quota_enforce_many` (several, as one instance's vCPUs, RAM and disk) must run
inside the transaction that creates the resource: they lock the tenant row, so concurrent
creators for one tenant are serialised and usage can never pass a limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from iaas.errors import InvalidRequest, QuotaExceeded
from tenants.models import Quota, Tenant

UNLIMITED = -1
UsageCounter = Callable[[Tenant], int]
GroupCounter = Callable[[Tenant], Mapping[str, int]]
_COUNTERS: dict[str, UsageCounter] = {}
#: resource -> the counter of its group, for resources registered together
_GROUPS: dict[str, GroupCounter] = {}


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


def register_resource_group(resources: tuple[str, ...], counter: GroupCounter) -> None:
    """Declare quota resources whose usage one query counts together (`counter` returns
    each of them): `quota_enforce_many` asks it once for all of them."""
    for resource in resources:
        register_resource(resource, _one_of(counter, resource))
        _GROUPS[resource] = counter


def _one_of(counter: GroupCounter, resource: str) -> UsageCounter:
    def count(tenant: Tenant) -> int:
        return counter(tenant)[resource]

    return count


def _usage(tenant: Tenant, wanted: list[str]) -> dict[str, int]:
    """Current usage of `wanted`, each group's counter asked once."""
    usage: dict[str, int] = {}
    for resource in wanted:
        if resource in usage:
            continue
        group = _GROUPS.get(resource)
        if group is None:
            usage[resource] = _COUNTERS[resource](tenant)
        else:
            counted = group(tenant)
            usage.update({name: counted[name] for name in wanted if name in counted})
    return usage


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
    quota_enforce_many(tenant, {resource: amount})


def quota_enforce_many(tenant: Tenant, amounts: Mapping[str, int]) -> None:
    """`quota_enforce` for several resources at once (one lock, one read of the limits, each
    usage group counted once): QuotaExceeded names the first resource, in `amounts`' order,
    that adding its amount would pass."""
    for resource in amounts:
        check_resource(resource)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quota_enforce must run inside the creating transaction")
    Tenant.objects.select_for_update().only("pk").get(pk=tenant.pk)
    explicit = dict(
        Quota.objects.filter(tenant=tenant, resource__in=list(amounts)).values_list(
            "resource", "limit"
        )
    )
    limits = {
        resource: explicit.get(resource, int(settings.DEFAULT_QUOTAS[resource]))
        for resource in amounts
    }
    limited = [resource for resource, limit in limits.items() if limit != UNLIMITED]
    usage = _usage(tenant, limited)
    for resource in limited:
        amount, limit, used = amounts[resource], limits[resource], usage[resource]
        if used + amount > limit:
            raise QuotaExceeded(
                f"Quota exceeded for {resource}: {used} in use, limit {limit}, {amount} requested.",
                details={"resource": resource, "limit": limit, "usage": used, "requested": amount},
            )
