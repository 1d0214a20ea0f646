"""M8: behind a trusted reverse proxy the client's address comes from X-Forwarded-For (so the
per-address sign-in limit and the audit log see clients, not the proxy); from anyone else the
header is ignored."""

from __future__ import annotations

import pytest
from django.test import Client

from iaas.models import AuditEvent
from iaas.proxy import client_address

PROXY = ["198.51.100.10/32"]


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("198.51.100.10", "203.0.113.5", "203.0.113.5"),
        ("198.51.100.10", "192.0.2.1, 203.0.113.5", "203.0.113.5"),  # the left part is forgeable
        ("198.51.100.10", "203.0.113.5, 198.51.100.10", "203.0.113.5"),  # proxies chained
        ("198.51.100.10", "not-an-ip", "198.51.100.10"),
        ("198.51.100.10", "", "198.51.100.10"),
        ("203.0.113.9", "192.0.2.1", "203.0.113.9"),  # not from the proxy: header ignored
    ],
)
def test_client_address(remote, forwarded, expected):
    assert client_address(remote, forwarded, PROXY) == expected


def test_without_trusted_proxies_the_header_is_ignored():
    assert client_address("198.51.100.10", "203.0.113.5", []) == "198.51.100.10"


@pytest.mark.django_db
def test_sign_in_failures_behind_the_proxy_are_counted_per_client(
    settings, make_tenant, make_caller
):
    settings.TRUSTED_PROXIES = PROXY
    username = make_caller(make_tenant("acme")).user.username
    proxy = Client(REMOTE_ADDR="198.51.100.10")
    response = proxy.post(
        "/api/v1/auth/login",
        {"username": username, "password": "wrong-wrong-wrong"},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="203.0.113.5",
    )
    assert response.status_code == 401
    event = AuditEvent.objects.latest("id")
    assert event.source_address == "203.0.113.5"
