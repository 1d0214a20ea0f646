"""API rate limits (review M7): per token, per user, per address for anonymous callers, and
per address on the sign-in endpoints, counted in the shared cache (Redis) so every API
process counts together. A refused request is `429 throttled` in the error shape, with
`Retry-After` (and `details.retry_after`).

Rates come from settings.API_THROTTLE_RATES, read at each request (DRF's own classes read
theirs once at import), so an operator can change them by configuration and a test by
settings; a rate of None means unlimited."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from tenants.models import ApiToken

logger = logging.getLogger(__name__)


class _ConfiguredRateThrottle(SimpleRateThrottle):
    scope = ""

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        # The rate may have changed since this throttle was made (one per request, but DRF
        # parses it in __init__): parse it again.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as exc:
            # The counters' cache is down: the request is let through (rate limits protect
            # the service; refusing everyone, or a 500, would be the outage itself) and the
            # operator is told, once per request, that limits are not being counted.
            logger.warning("rate limits not counted, the cache is unreachable: %s", exc)
            return True

    def _key(self, ident: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenRateThrottle(_ConfiguredRateThrottle):
    """Each API token on its own."""

    scope = "token"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        auth = request.auth
        return self._key(auth.pk) if isinstance(auth, ApiToken) else None


class UserRateThrottle(_ConfiguredRateThrottle):
    """Each account, all its tokens and sessions together."""

    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        user = request.user
        return self._key(user.pk) if user is not None and user.is_authenticated else None


class AnonymousRateThrottle(_ConfiguredRateThrottle):
    """Callers without credentials, per client address (iaas.proxy sets it behind a proxy)."""

    scope = "anonymous"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        user = request.user
        if user is not None and user.is_authenticated:
            return None
        return self._key(request.META.get("REMOTE_ADDR") or "unknown")


class SignInRateThrottle(_ConfiguredRateThrottle):
    """The sign-in endpoints, per client address, before any password is checked."""

    scope = "signin"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self._key(request.META.get("REMOTE_ADDR") or "unknown")
