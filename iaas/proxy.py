"""The client's address behind a trusted reverse proxy (review M8).

Behind a proxy, REMOTE_ADDR is the proxy's address: every sign-in would then count against one
address (20 failures from anyone would lock everybody out) and every audit event would carry
the proxy's address. `TrustedProxyMiddleware` rewrites REMOTE_ADDR from `X-Forwarded-For`,
but only when the request comes from an address of TRUSTED_PROXIES (CIDRs; empty by default,
so the header is ignored and cannot be forged by clients): the client is the right-most
address of the header that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def address_in(address: str, cidrs: Sequence[str]) -> bool:
    """Whether `address` (a textual IP; anything else is in no network) is in one of `cidrs`."""
    return _trusted(address, _networks(tuple(cidrs)))


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(remote_addr: str, forwarded_for: str, trusted: Sequence[str]) -> str:
    """The client's address: `remote_addr` unless it is a trusted proxy, in which case the
    right-most valid address of `forwarded_for` that is not a trusted proxy."""
    networks = _networks(tuple(trusted))
    if not networks or not _trusted(remote_addr, networks):
        return remote_addr
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return remote_addr  # a garbled header: keep the proxy's address, not a guess
        if not _trusted(address, networks):
            return address
    return remote_addr


class TrustedProxyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.TRUSTED_PROXIES:
            request.META["REMOTE_ADDR"] = client_address(
                request.META.get("REMOTE_ADDR", ""),
                request.META.get("HTTP_X_FORWARDED_FOR", ""),
                settings.TRUSTED_PROXIES,
            )
        return self.get_response(request)
