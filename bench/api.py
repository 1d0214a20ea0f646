"""Listing a tenant's 10,000 instances through the API, page by page (issue 4).

    .venv/bin/python bench/api.py            # 10,000 instances; limit=10, 100, 1000
    .venv/bin/python bench/api.py --small    # 1,000 instances

The tenant's instances are bulk-created with a flavor, a keypair, a host (in a zone) and a
port each. The list is read in-process with DRF's APIClient and a real bearer token,
following `next` (at most 100 pages per page size). Per page: wall time and the number of
SQL queries, which must be the same whatever the page size.

The ports' addresses come from 198.18.0.0/15 (RFC 2544, reserved for benchmarks): 10,000 do
not fit in the documentation ranges, and this network exists only as rows in the bench
database, never on a host.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _setup

PREFIX = "bapi-"
MAX_PAGES = 100
LIMITS = (10, 100, 1000)


def reset() -> None:
    tenants = "SELECT id FROM tenants_tenant WHERE slug LIKE 'bapi-%'"
    instances = f"SELECT id FROM compute_instance WHERE tenant_id IN ({tenants})"  # noqa: S608
    for statement in _setup.network_reset_sql(tenants):
        _setup.execute(statement)
    _setup.execute(f"DELETE FROM compute_allocation WHERE instance_id IN ({instances})")  # noqa: S608
    _setup.execute(f"DELETE FROM compute_instance WHERE tenant_id IN ({tenants})")  # noqa: S608
    _setup.execute(f"DELETE FROM compute_keypair WHERE tenant_id IN ({tenants})")  # noqa: S608
    _setup.execute("DELETE FROM compute_host WHERE name LIKE 'bapi-%'")


def seed(count: int) -> Any:
    from compute.models import KeyPair

    tenant = _setup.ensure_tenant(f"{PREFIX}acme", ["FR"])
    zone = _setup.ensure_zone(f"{PREFIX}fr-1", "FR")
    # Disabled: the scheduler benchmark, sharing this database, must not place on it.
    hosts = _setup.make_hosts(f"{PREFIX}h", 4, [zone], disabled_every=1)
    flavor = _setup.ensure_flavor(f"{PREFIX}small", 1, 1024, 10)
    keypair = KeyPair.objects.create(
        tenant=tenant, name="laptop", key_type="ssh-ed25519", public_key="ssh-ed25519 AAAA bench",
        fingerprint="SHA256:bench", bits=256,
    )  # fmt: skip
    subnet = _setup.make_subnet(tenant, "198.18.0.0/15")
    extra = count // 100
    _setup.make_instances(tenant, flavor, hosts, count + extra, subnet=subnet, keypair=keypair)
    # 1 % more, deleted, which the list must skip.
    _setup.execute(
        "UPDATE compute_instance SET status = 'deleted' WHERE tenant_id = %s AND name >= %s",
        [tenant.pk, f"vm-{count:06d}"],
    )
    # Distinct creation times, one second apart (bulk_create stamps them all "now").
    _setup.execute(
        "UPDATE compute_instance i SET created_at = now() - make_interval(secs => s.n) "
        "FROM (SELECT id, row_number() OVER (ORDER BY name) AS n FROM compute_instance "
        "WHERE tenant_id = %s) s WHERE i.id = s.id",
        [tenant.pk],
    )
    for table in ("compute_instance", "network_port", "compute_host", "compute_flavor"):
        _setup.execute(f"VACUUM ANALYZE {table}")
    return tenant


def walk(
    client: Any, limit: int, max_pages: int
) -> tuple[list[float], list[int], list[float], int]:
    """Follow `next` from the first page: per page its milliseconds, its query count and the
    milliseconds spent in SQL; and the number of rows seen."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url: str | None = f"/api/v1/instances?limit={limit}"
    times: list[float] = []
    queries: list[int] = []
    sql_ms: list[float] = []
    rows = 0
    while url and len(times) < max_pages:
        with CaptureQueriesContext(connection) as captured:
            t0 = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - t0
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        times.append(elapsed * 1000)
        queries.append(len(captured.captured_queries))
        sql_ms.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
        rows += len(body["results"])
        url = body["next"]
    return times, queries, sql_ms, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,000 instances")
    parser.add_argument("--keep", action="store_true", help="keep the seeded rows afterwards")
    args = parser.parse_args()
    count = 1000 if args.small else 10000

    _setup.setup_django()
    from django.conf import settings
    from django.db import connection
    from rest_framework.test import APIClient

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    # The bench measures listing, not the rate limits (review M7) it would otherwise hit
    # after a few pages: the limits are lifted for this process only.
    settings.API_THROTTLE_RATES = dict.fromkeys(settings.API_THROTTLE_RATES)
    started = time.monotonic()
    reset()
    t = time.monotonic()
    tenant = seed(count)
    visible = tenant.instances.exclude(status="deleted").count()
    print(f"seeded {count + count // 100} instances ({visible} not deleted) in "
          f"{time.monotonic() - t:.1f} s; database {connection.settings_dict['NAME']}")  # fmt: skip
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_setup.api_token(tenant, 'bapi-reader')}")
    try:
        walk(client, 100, 3)  # warm-up
        per_limit: dict[int, set[int]] = {}
        headline: dict[str, float] = {}
        for limit in LIMITS:
            times, queries, sql_ms, rows = walk(client, limit, MAX_PAGES)
            stats = _setup.summary(times)
            per_limit[limit] = set(queries)
            print(f"limit={limit:>4}: {len(times)} pages, {rows} rows; per page {_setup.fmt(stats)}"
                  f" (of which SQL p50 {_setup.percentile(sql_ms, 50):.2f} ms); "
                  f"queries per page {sorted(set(queries))}")  # fmt: skip
            if limit == 100:
                headline = stats
                assert rows == min(visible, 100 * MAX_PAGES), rows
        counts = {q for qs in per_limit.values() for q in qs}
        print(f"\nlimit=100 over {int(headline['n'])} pages: p50 {headline['p50']:.1f} ms, "
              f"p95 {headline['p95']:.1f} ms")  # fmt: skip
        same = len(counts) == 1
        print(f"queries per page identical for limit={', '.join(map(str, LIMITS))}: "
              f"{'YES' if same else 'NO'} ({sorted(counts)})")  # fmt: skip
    finally:
        if not args.keep:
            reset()
    print(f"total {time.monotonic() - started:.1f} s")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
