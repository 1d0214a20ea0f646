"""Shared plumbing of the benchmarks: Django on a dedicated PostgreSQL database, fast bulk
seeding of hosts, instances, allocations and ports, real API tokens, and percentiles.

The database is BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/
andromede_bench), never DATABASE_URL: a shell that points DATABASE_URL at the dev or test
database cannot make a benchmark write there. Its name must contain "bench"; it is created
when missing and migrated on every run.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/andromede_bench"
BATCH = 5000
T = TypeVar("T")


def _ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to benchmark on {name!r}: its name must contain 'bench'")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def setup_django(*, migrate: bool = True) -> str:
    """Point Django at the benchmark database (created if missing), set it up, migrate.
    Returns the database URL."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("BENCH_DATABASE_URL must be a PostgreSQL URL")
    _ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "iaas.settings"
    # Seeding 50,000 rows in one statement may take longer than the API's 30 s bound.
    os.environ.setdefault("DATABASE_STATEMENT_TIMEOUT_MS", "300000")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    return url


# --- numbers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def fmt(stats: dict[str, float], unit: str = "ms") -> str:
    return (
        f"n={int(stats['n'])} p50={stats['p50']:.2f} {unit} p95={stats['p95']:.2f} {unit} "
        f"max={stats['max']:.2f} {unit}"
    )


# --- seeding ---------------------------------------------------------------------------------


def chunks(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def execute(statement: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
    """Run one SQL statement on the default connection; the row count."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def system_actor() -> Any:
    from iaas.audit import Actor

    return Actor.system("bench")


def ensure_tenant(slug: str, residency: list[str] | None = None) -> Any:
    from tenants import services
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        tenant = services.tenant_create(
            actor=system_actor(), name=slug.title(), slug=slug, residency=residency or ["FR"]
        )
    return tenant


def api_token(tenant: Any, username: str, role: str = "member") -> str:
    """A real bearer token (user, membership, token through the services)."""
    from django.contrib.auth import get_user_model

    from tenants import services
    from tenants.models import Membership

    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        user = user_model.objects.create_user(username=username, password=None)
    if not Membership.objects.filter(user=user, tenant=tenant).exists():
        services.membership_add(actor=system_actor(), tenant=tenant, username=username, role=role)
    _, secret = services.token_create(
        actor=system_actor(), user=user, tenant=tenant, name="bench", role=role
    )
    return secret


def ensure_zone(name: str, jurisdiction: str, region: str = "bench") -> Any:
    from hosts.models import Region, Zone

    reg, _ = Region.objects.get_or_create(name=region)
    zone, _ = Zone.objects.get_or_create(
        name=name,
        defaults={
            "region": reg,
            "site": "bench",
            "city": "bench",
            "country": jurisdiction,
            "jurisdiction": jurisdiction,
        },
    )
    return zone


def ensure_flavor(name: str, vcpus: int, memory_mb: int, disk_gb: int) -> Any:
    from compute.models import Flavor

    flavor, _ = Flavor.objects.get_or_create(
        name=name, defaults={"vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb}
    )
    return flavor


def make_hosts(
    prefix: str, count: int, zones: Sequence[Any], *, disabled_every: int = 0, **capacity: Any
) -> list[Any]:
    """`count` hosts named <prefix>0001…, round-robin over `zones`, never contacted (their
    libvirt URI is libvirt's fake). Every `disabled_every`-th host is disabled."""
    from hosts.models import Host

    fields = {"cpus": 64, "memory_mb": 512 * 1024, "disk_gb": 8000, "arch": "x86_64"} | capacity
    hosts = [
        Host(
            name=f"{prefix}{i:04d}",
            zone=zones[i % len(zones)],
            libvirt_uri="test:///default",
            storage_root=f"/nonexistent/{prefix}{i:04d}",
            domain_type="test",
            state=(
                Host.State.DISABLED
                if disabled_every and i % disabled_every == 0
                else Host.State.ENABLED
            ),
            **fields,
        )
        for i in range(1, count + 1)
    ]
    for batch in chunks(hosts):
        Host.objects.bulk_create(batch)
    return hosts


def network_reset_sql(tenants: str) -> list[str]:
    """Statements removing every network row of the tenants selected by the SQL `tenants`
    (a subquery of ids), children first."""
    ports = f"SELECT id FROM network_port WHERE tenant_id IN ({tenants})"  # noqa: S608
    return [
        f"DELETE FROM network_floatingip WHERE tenant_id IN ({tenants})",  # noqa: S608
        f"DELETE FROM network_fixedip WHERE port_id IN ({ports})",  # noqa: S608
        f"DELETE FROM network_port_security_groups WHERE port_id IN ({ports})",  # noqa: S608
        f"DELETE FROM network_port WHERE tenant_id IN ({tenants})",  # noqa: S608
        f"DELETE FROM network_router WHERE tenant_id IN ({tenants})",  # noqa: S608
        f"DELETE FROM network_subnet WHERE tenant_id IN ({tenants})",  # noqa: S608
        f"DELETE FROM network_securitygrouprule WHERE tenant_id IN ({tenants})",  # noqa: S608
        f"DELETE FROM network_securitygroup WHERE tenant_id IN ({tenants})",  # noqa: S608
        f"DELETE FROM network_network WHERE tenant_id IN ({tenants})",  # noqa: S608
    ]


def make_subnet(tenant: Any, cidr: str, *, default: bool = False) -> Any:
    """A network of `tenant` with one subnet of `cidr` (rows only: any size, no OVN)."""
    import ipaddress

    from network.models import Network, Subnet

    network = Network.objects.create(tenant=tenant, name=f"bench-{cidr}", is_default=default)
    hosts = ipaddress.ip_network(cidr)
    return Subnet.objects.create(
        network=network, tenant=tenant, cidr=cidr, gateway_ip=str(hosts[1]),
        allocation_pools=[{"start": str(hosts[2]), "end": str(hosts[-2])}],
    )  # fmt: skip


def make_instances(
    tenant: Any,
    flavor: Any,
    hosts: Sequence[Any],
    count: int,
    *,
    start: int = 0,
    allocations: bool = False,
    subnet: Any = None,
    keypair: Any = None,
    mac_prefix: str = "52:54:bb",
) -> int:
    """`count` active instances of `tenant`, round-robin over `hosts`, with (optionally) an
    Allocation each and a Port with one address each on `subnet` (whose cidr must hold them
    all). Batched bulk_create; returns how many were made."""
    import ipaddress

    from compute.models import Allocation, Instance
    from network.models import FixedIP, Port

    image_id = uuid.uuid5(uuid.NAMESPACE_URL, "andromede-bench-image")
    addresses = ipaddress.ip_network(subnet.cidr).hosts() if subnet is not None else None
    if addresses is not None:
        for _ in range(start + 1):  # .1 is the gateway; skip the addresses already given
            next(addresses)
    made = 0
    for batch in chunks(range(start, start + count)):
        instances = [
            Instance(
                tenant=tenant,
                name=f"vm-{i:06d}",
                flavor=flavor,
                image_id=image_id,
                keypair=keypair,
                host=hosts[i % len(hosts)],
                status=Instance.Status.ACTIVE,
                power_state="running",
                vcpus=flavor.vcpus,
                memory_mb=flavor.memory_mb,
                disk_gb=flavor.disk_gb,
            )
            for i in batch
        ]
        Instance.objects.bulk_create(instances)
        if allocations:
            Allocation.objects.bulk_create(
                Allocation(
                    instance=inst,
                    host=hosts[i % len(hosts)],
                    vcpus=inst.vcpus,
                    memory_mb=inst.memory_mb,
                    disk_gb=inst.disk_gb,
                )
                for i, inst in zip(batch, instances, strict=True)
            )
        if subnet is not None and addresses is not None:
            ports = Port.objects.bulk_create(
                Port(
                    id=uuid.uuid4(),
                    network_id=subnet.network_id,
                    tenant=tenant,
                    device_id=inst.pk,
                    device_owner="compute:instance",
                    mac=f"{mac_prefix}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
                )
                for i, inst in zip(batch, instances, strict=True)
            )
            FixedIP.objects.bulk_create(
                FixedIP(port=port, subnet=subnet, ip=str(next(addresses))) for port in ports
            )
        made += len(instances)
    if allocations:
        # bulk_create bypasses compute.services.scheduler, which keeps Host.allocated_*: set them
        # from the Allocation rows, as the 0006 migration and the reconciler do.
        execute(
            "UPDATE compute_host h SET allocated_vcpus = s.vcpus, "
            "allocated_memory_mb = s.memory_mb, allocated_disk_gb = s.disk_gb "
            "FROM (SELECT host_id, SUM(vcpus) AS vcpus, SUM(memory_mb) AS memory_mb, "
            "SUM(disk_gb) AS disk_gb FROM compute_allocation WHERE host_id = ANY(%s) "
            "GROUP BY host_id) s WHERE h.id = s.host_id",
            [[h.pk for h in hosts]],
        )
    return made


def analyze() -> None:
    execute("ANALYZE")


def libvirt_networks(uri: str = "qemu:///system") -> set[str]:
    """The names of the libvirt networks on `uri` now (read before a run, so that its cleanup
    removes only the tenant networks the run made)."""
    import libvirt

    conn = libvirt.open(uri)
    try:
        return {net.name() for net in conn.listAllNetworks()}
    finally:
        conn.close()


def remove_host_objects(
    host: str, networks_before: set[str] | None, uri: str = "qemu:///system"
) -> list[str]:
    """Remove what a bench's host `host` left on the libvirtd at `uri`: the domains whose
    disks are in its pools, its pools and their files, and, when `networks_before` is given,
    the tenant networks (andr-t-*) not in it. Returns what was removed."""
    import libvirt

    removed = []
    conn = libvirt.open(uri)
    try:
        for domain in conn.listAllDomains():
            if f"andromede-{host}-" in domain.XMLDesc():
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
                removed.append(f"domain {domain.name()}")
        for net in conn.listAllNetworks() if networks_before is not None else ():
            if net.name().startswith("andr-t-") and net.name() not in (networks_before or ()):
                if net.isActive():
                    net.destroy()
                net.undefine()
                removed.append(f"network {net.name()}")
        for pool in conn.listAllStoragePools():
            if pool.name().startswith(f"andromede-{host}-"):
                if pool.isActive():
                    pool.refresh()
                    for volume in pool.listAllVolumes():
                        volume.delete()
                    pool.destroy()
                pool.undefine()
                removed.append(f"pool {pool.name()}")
    finally:
        conn.close()
    return removed
