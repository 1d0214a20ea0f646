"""Parallel exports against EXPORTS_PER_TENANT on PostgreSQL, over real HTTP (`live_server`),
each request on its own connection: the tenant row lock of `export_begin` makes the count
exact, and every refused volume stays `available`."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from images.models import Export
from images.services.stores import image_store_create
from operations.models import Operation
from tests import factories
from tests.factories import SYSTEM
from tests.support.live_http import post_json
from volumes.models import Volume

EXPORTS = 8
LIMIT = 3


@pytest.mark.django_db(transaction=True)
def test_parallel_exports_accept_exactly_the_limit(
    live_server, make_tenant, make_caller, settings, tmp_path
):
    settings.EXPORTS_PER_TENANT = LIMIT
    zone = factories.zone("fr-par-1")
    factories.host("h1", zone)
    image_store_create(actor=SYSTEM, name="par1", zone=zone, path=str(tmp_path))
    volume_type = factories.volume_type("standard")
    tenant = make_tenant("acme")
    volumes = [
        factories.available_volume(tenant, volume_type=volume_type, name=f"v{n}")
        for n in range(EXPORTS)
    ]
    caller = make_caller(tenant, "member")
    barrier = threading.Barrier(EXPORTS)

    def one(volume: Volume) -> tuple[int, dict]:
        barrier.wait(timeout=30)
        return post_json(f"{live_server.url}/api/v1/volumes/{volume.pk}/export", caller.token, {})

    with concurrent.futures.ThreadPoolExecutor(max_workers=EXPORTS) as pool:
        results = list(pool.map(one, volumes))
    statuses = [status for status, _ in results]
    assert statuses.count(202) == LIMIT, results
    assert statuses.count(403) == EXPORTS - LIMIT
    refused = [body["error"] for status, body in results if status == 403]
    assert {(e["code"], e["details"]["resource"]) for e in refused} == {
        ("quota_exceeded", "exports")
    }
    assert Export.objects.count() == LIMIT
    assert Operation.objects.filter(action="volume.export").count() == LIMIT
    exporting = set(Volume.objects.filter(status="exporting").values_list("pk", flat=True))
    assert exporting == set(Export.objects.values_list("source_id", flat=True))
    assert Volume.objects.filter(status="available").count() == EXPORTS - LIMIT
