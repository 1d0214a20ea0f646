"""Who may read /metrics: a caller from an internal address AND an operator.

The peer address (after iaas.proxy: behind a trusted reverse proxy, the client's) must be in
METRICS_ALLOWED_NETWORKS (loopback only by default), and the caller check must say yes: tenants
registers one (an operator's API token as Bearer) from its `AppConfig.ready()`, since this
package may not import it (DESIGN §1). With no check registered, nobody may.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest

from iaas.proxy import address_in

CallerCheck = Callable[[HttpRequest], bool]

_caller_check: CallerCheck | None = None


def register_caller_check(check: CallerCheck) -> None:
    """Set the check of who may scrape (one; registering again replaces it)."""
    global _caller_check
    _caller_check = check


def peer_allowed(address: str) -> bool:
    """Whether `address` is in one of METRICS_ALLOWED_NETWORKS."""
    return address_in(address, settings.METRICS_ALLOWED_NETWORKS)


def may_scrape(request: HttpRequest) -> bool:
    """The peer address first (nothing about the caller is looked at from elsewhere), then
    the caller."""
    if not peer_allowed(request.META.get("REMOTE_ADDR", "")):
        return False
    return _caller_check is not None and _caller_check(request)
