"""Placement decision time with 1,000 hosts and 5,000 then 50,000 instances (issue 4).

    .venv/bin/python bench/scheduler.py            # 1,000 hosts; 5,000 and 50,000 instances
    .venv/bin/python bench/scheduler.py --small    # 1,000 hosts; 1,000 and 5,000 instances

Each placement creates an instance row, then times `candidates(request)[:5]` (evaluated)
and `claim()` (the whole decision: residency check, candidates, row lock, re-check, insert),
inside a transaction that is rolled back, so the data does not drift between placements.
Requests rotate over residency FR, DE and FR+DE, with and without a zone, spread and pack.
Target: p95 < 20 ms, not growing with the number of instances.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _setup

PREFIX = "bsch-"
HOSTS = 1000
TARGET_P95_MS = 20.0


_RESET = (
    "DELETE FROM compute_allocation WHERE host_id IN "
    "(SELECT id FROM compute_host WHERE name LIKE 'bsch-%')",
    *_setup.network_reset_sql("SELECT id FROM tenants_tenant WHERE slug LIKE 'bsch-%'"),
    "DELETE FROM compute_instance WHERE tenant_id IN "
    "(SELECT id FROM tenants_tenant WHERE slug LIKE 'bsch-%')",
    "DELETE FROM compute_storagepool WHERE host_id IN "
    "(SELECT id FROM compute_host WHERE name LIKE 'bsch-%')",
    "DELETE FROM compute_host WHERE name LIKE 'bsch-%'",
)


def reset() -> None:
    """Remove this benchmark's rows (hosts bsch-*, tenants bsch-*) from the bench database."""
    for statement in _RESET:
        _setup.execute(statement)


def requests() -> list[Any]:
    from compute.services.scheduler import PlacementRequest

    shapes = [
        {"jurisdictions": ("FR",)},
        {"jurisdictions": ("DE",)},
        {"jurisdictions": ("DE", "FR")},
        {"jurisdictions": ("FR",), "zone": f"{PREFIX}fr-2"},
        {"jurisdictions": ("FR",), "strategy": "pack"},
    ]
    sizes = [(1, 1024, 10), (2, 4096, 20), (4, 8192, 40)]
    return [
        PlacementRequest(vcpus=v, memory_mb=m, disk_gb=d, **shape)  # type: ignore[arg-type]
        for shape in shapes
        for (v, m, d) in sizes
    ]


def measure(placements: int, deadline_s: float, tenant: Any, flavor: Any) -> dict[str, Any]:
    from django.db import transaction

    from compute.models import Instance
    from compute.services.scheduler import candidates, claim

    reqs = requests()
    cand_ms: list[float] = []
    claim_ms: list[float] = []
    placed_de = placed_fr = 0
    stop = time.monotonic() + deadline_s
    for i in range(placements):
        if time.monotonic() > stop:
            print(f"  deadline reached after {i} placements")
            break
        req = reqs[i % len(reqs)]
        with transaction.atomic():
            instance = Instance.objects.create(
                tenant=tenant, name=f"p-{i}", flavor=flavor, image_id=flavor.pk,
                vcpus=req.vcpus, memory_mb=req.memory_mb, disk_gb=req.disk_gb,
            )  # fmt: skip
            t0 = time.perf_counter()
            found = list(candidates(req)[:5])
            t1 = time.perf_counter()
            host = claim(instance, req)
            t2 = time.perf_counter()
            transaction.set_rollback(True)
        assert found, f"no candidate for {req}"
        jurisdiction = host.zone.jurisdiction
        assert jurisdiction in req.jurisdictions, (host, req)
        if req.zone:
            assert host.zone.name == req.zone
        placed_de += jurisdiction == "DE"
        placed_fr += jurisdiction == "FR"
        cand_ms.append((t1 - t0) * 1000)
        claim_ms.append((t2 - t1) * 1000)
    return {
        "candidates": _setup.summary(cand_ms),
        "claim": _setup.summary(claim_ms),
        "fr": placed_fr,
        "de": placed_de,
    }


def explain(label: str) -> str:
    from compute.services.scheduler import PlacementRequest, candidates

    request = PlacementRequest(vcpus=2, memory_mb=4096, disk_gb=20, jurisdictions=("FR",))
    plan = candidates(request)[:5].explain(analyze=True, buffers=True)
    print(f"\n--- EXPLAIN ANALYZE candidates(FR, 2 vCPU/4 GiB/20 GB)[:5] at {label} ---")
    print(plan)
    return plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,000 and 5,000 instances")
    parser.add_argument("--placements", type=int, default=None, help="placements per scale")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per scale, max")
    parser.add_argument("--keep", action="store_true", help="keep the seeded rows afterwards")
    args = parser.parse_args()
    scales = (1000, 5000) if args.small else (5000, 50000)
    placements = min(args.placements or (50 if args.small else 200), 2000)

    _setup.setup_django()
    from django.db import connection

    from compute.models import Flavor

    started = time.monotonic()
    reset()
    fr = [_setup.ensure_zone(f"{PREFIX}fr-{n}", "FR") for n in (1, 2, 3)]
    de = [_setup.ensure_zone(f"{PREFIX}de-1", "DE")]
    # Three French zones and one German: 750 FR hosts, 250 DE; 1 in 20 disabled.
    zones = [fr[0], fr[1], fr[2], de[0]]
    hosts = _setup.make_hosts(f"{PREFIX}h", HOSTS, zones, disabled_every=20)
    enabled = [h for h in hosts if h.state == "enabled"]
    load = _setup.ensure_tenant(f"{PREFIX}load", ["FR", "DE"])
    placer = _setup.ensure_tenant(f"{PREFIX}placer", ["FR", "DE"])
    flavor = _setup.ensure_flavor(f"{PREFIX}m2", 2, 4096, 20)
    flavor = Flavor.objects.get(pk=flavor.pk)
    print(f"PostgreSQL {connection.cursor().connection.info.server_version}, database "
          f"{connection.settings_dict['NAME']}; {HOSTS} hosts ({len(enabled)} enabled, "
          f"4 zones: 3 FR, 1 DE)")  # fmt: skip

    results: dict[int, dict[str, Any]] = {}
    have = 0
    try:
        for scale in scales:
            t = time.monotonic()
            have += _setup.make_instances(
                load, flavor, enabled, scale - have, start=have, allocations=True
            )
            _setup.execute("VACUUM ANALYZE compute_allocation")
            _setup.execute("VACUUM ANALYZE compute_host")
            _setup.execute("VACUUM ANALYZE compute_instance")
            print(f"\nseeded {have} instances with allocations in {time.monotonic() - t:.1f} s")
            measure(10, 30, placer, flavor)  # warm-up: connection, plans, caches
            result = measure(placements, args.deadline, placer, flavor)
            results[scale] = result
            print(f"  candidates()[:5]: {_setup.fmt(result['candidates'])}")
            print(f"  claim():          {_setup.fmt(result['claim'])}")
            print(f"  placed in FR {result['fr']}, in DE {result['de']}")
            explain(f"{scale} instances")
    finally:
        if not args.keep:
            reset()

    low, high = scales
    print("\n=== summary ===")
    for scale in scales:
        r = results[scale]
        print(
            f"{scale:>6} instances: candidates p50 {r['candidates']['p50']:.2f} ms "
            f"p95 {r['candidates']['p95']:.2f} ms | claim p50 {r['claim']['p50']:.2f} ms "
            f"p95 {r['claim']['p95']:.2f} ms max {r['claim']['max']:.2f} ms"
        )
    ratio = results[high]["claim"]["p95"] / results[low]["claim"]["p95"]
    cratio = results[high]["candidates"]["p95"] / results[low]["candidates"]["p95"]
    print(f"p95 ratio {high}/{low}: claim x{ratio:.2f}, candidates x{cratio:.2f}")
    p95 = results[high]["claim"]["p95"]
    met = p95 < TARGET_P95_MS
    print(
        f"target p95 < {TARGET_P95_MS:.0f} ms at {high} instances: "
        f"{'MET' if met else 'NOT MET'} ({p95:.2f} ms)"
    )
    print(f"total {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
