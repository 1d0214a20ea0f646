"""Who may read /metrics: a caller from an internal address AND an operator.

The peer address (after iaas.proxy: behind a trusted reverse proxy, the client's) must be in
METRICS_ALLOWED_NETWORKS (loopback only by default), and the caller check must say yes: tenants
registers one (an operator's API token as Bearer) from its `AppConfig.ready()`, since this
package may not import it (DESIGN §1). With no check registered, nobody may.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

CallerCheck = Callable[[HttpRequest], bool]

_caller_checks: list[CallerCheck] = []


def register_caller_check(check: CallerCheck) -> None:
    """Set the check of who may scrape (one; registering again replaces it)."""
    _caller_checks[:] = [check]


@lru_cache(maxsize=8)
def _networks(
    cidrs: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def peer_allowed(address: str) -> bool:
    """Whether `address` is in one of METRICS_ALLOWED_NETWORKS."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def may_scrape(request: HttpRequest) -> bool:
    """The peer address first (nothing about the caller is looked at from elsewhere), then
    the caller."""
    if not peer_allowed(request.META.get("REMOTE_ADDR", "")):
        return False
    return bool(_caller_checks) and _caller_checks[0](request)
