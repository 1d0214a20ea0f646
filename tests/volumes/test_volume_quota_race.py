"""Parallel creates against the `volume_gb` quota on PostgreSQL, over real HTTP
(`live_server`), each request on its own connection: the tenant row lock of
`quota_enforce_many` makes the count exact (issue 11, "Done means")."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from operations.models import Operation
from tenants import services as tenant_services
from tests import factories
from tests.factories import SYSTEM
from tests.support.live_http import post_json
from volumes.models import Volume

CREATES = 24
LIMIT_GB = 10  # room for exactly five 2 GiB volumes


@pytest.mark.django_db(transaction=True)
def test_parallel_creates_against_volume_gb_accept_exactly_what_fits(
    live_server, make_tenant, make_caller
):
    zone = factories.zone("fr-par-1")
    factories.host("h1", zone)
    factories.host("h2", zone)
    factories.volume_type("standard")
    tenant = make_tenant("acme")
    tenant_services.quota_set(actor=SYSTEM, tenant=tenant, resource="volume_gb", limit=LIMIT_GB)
    caller = make_caller(tenant, "member")
    barrier = threading.Barrier(CREATES)

    def one(n: int) -> tuple[int, dict]:
        barrier.wait(timeout=30)
        body = {"name": f"v{n}", "size_gb": 2}
        return post_json(f"{live_server.url}/api/v1/volumes", caller.token, body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=CREATES) as pool:
        results = list(pool.map(one, range(CREATES)))
    statuses = [status for status, _ in results]
    assert statuses.count(202) == LIMIT_GB // 2, results
    assert statuses.count(403) == CREATES - LIMIT_GB // 2
    refused = [body["error"] for status, body in results if status == 403]
    assert {(e["code"], e["details"]["resource"]) for e in refused} == {
        ("quota_exceeded", "volume_gb")
    }
    assert Volume.objects.count() == LIMIT_GB // 2
    assert sum(Volume.objects.values_list("size_gb", flat=True)) == LIMIT_GB
    assert Operation.objects.filter(action="volume.create").count() == LIMIT_GB // 2
