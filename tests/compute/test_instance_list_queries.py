"""Listing instances costs a fixed number of SQL queries per page, whatever the page size and
however deep the page (issue 4; bench/api.py measures it on 10,000 instances)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute.models import Flavor, Instance, KeyPair
from hosts.models import Host, Region, Zone
from network.models import FixedIP, Network, Port, Subnet

pytestmark = pytest.mark.django_db


@pytest.fixture
def listing(make_tenant, make_caller):
    """60 instances of one tenant: most on a host (in a zone) with a port and a keypair,
    some still unplaced, some without a keypair, a few deleted; and another tenant's.

    The ORM, not the services: the services place and address an instance as they create it
    and run a worker to delete it, so unplaced rows cannot be made through them, and 60
    builds would cost more than the reads measured here."""
    region = Region.objects.create(name="r1")
    zone = Zone.objects.create(
        region=region, name="fr-1", site="dc", city="Paris", country="FR", jurisdiction="FR"
    )
    capacity = {"arch": "x86_64", "cpus": 64, "memory_mb": 65536, "disk_gb": 1000}
    hosts = [
        Host.objects.create(
            name=f"h{i}",
            zone=zone,
            libvirt_uri="test:///default",
            storage_root=f"/fake/h{i}",
            domain_type="test",
            **capacity,
        )
        for i in range(3)
    ]
    flavors = [
        Flavor.objects.create(name=f"f{i}", vcpus=1 + i, memory_mb=512, disk_gb=1) for i in range(2)
    ]
    tenant = make_tenant("acme")
    other = make_tenant("globex")
    keypair = KeyPair.objects.create(
        tenant=tenant, name="laptop", key_type="ssh-ed25519", public_key="ssh-ed25519 AAAA x",
        fingerprint="SHA256:x", bits=256,
    )  # fmt: skip
    network = Network.objects.create(tenant=tenant, name="default", is_default=True)
    subnet = Subnet.objects.create(
        network=network, tenant=tenant, cidr="198.51.100.0/25", gateway_ip="198.51.100.1",
        allocation_pools=[{"start": "198.51.100.2", "end": "198.51.100.126"}],
    )  # fmt: skip
    for i in range(60):
        placed = i % 7 != 0
        instance = Instance.objects.create(
            tenant=tenant, name=f"vm-{i}", flavor=flavors[i % 2], image_id=flavors[0].pk,
            keypair=keypair if i % 3 else None, host=hosts[i % 3] if placed else None,
            status="deleted" if i % 11 == 5 else ("active" if placed else "building"),
            vcpus=1, memory_mb=512, disk_gb=1,
        )  # fmt: skip
        if placed:
            port = Port.objects.create(
                network=network, tenant=tenant, device_id=instance.pk,
                device_owner="compute:instance", mac=f"52:54:00:00:00:{i:02x}",
            )  # fmt: skip
            FixedIP.objects.create(port=port, subnet=subnet, ip=f"198.51.100.{i + 2}")
    Instance.objects.create(
        tenant=other, name="theirs", flavor=flavors[0], image_id=flavors[0].pk, vcpus=1,
        memory_mb=512, disk_gb=1,
    )  # fmt: skip
    visible = Instance.objects.filter(tenant=tenant).exclude(status="deleted").count()
    return make_caller(tenant, "reader").client(), visible


def _pages(client, limit: int) -> tuple[list[int], int]:
    """Query count of each page, following `next`; and the number of rows seen."""
    url = f"/api/v1/instances?limit={limit}"
    counts, rows = [], 0
    while url:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        counts.append(len(captured.captured_queries))
        rows += len(body["results"])
        url = body["next"]
    return counts, rows


def test_queries_per_page_do_not_depend_on_page_size_or_depth(listing):
    client, visible = listing
    # A token's first use records last_used_at (one write, then at most once a minute):
    # not a cost of listing.
    assert client.get("/api/v1/instances?limit=1").status_code == 200
    small, small_rows = _pages(client, 5)
    large, large_rows = _pages(client, 50)

    assert small_rows == large_rows == visible
    assert len(small) > 2  # several pages each, the last one partial
    assert len(large) == 2
    assert set(small) == set(large), (small, large)
    assert len(set(small)) == 1


def test_a_page_shows_zone_ip_keypair_and_flavor_without_extra_queries(listing):
    client, _ = listing
    body = client.get("/api/v1/instances?limit=100").json()
    shown = {item["name"]: item for item in body["results"]}
    assert "theirs" not in shown
    assert shown["vm-1"]["zone"] == "fr-1"
    assert shown["vm-1"]["ip"] == "198.51.100.3"
    assert shown["vm-1"]["keypair"] == "laptop"
    assert shown["vm-1"]["flavor"] == "f1"
    assert shown["vm-0"]["zone"] is None  # not placed yet
    assert shown["vm-0"]["ip"] is None
    assert shown["vm-3"]["keypair"] is None
    assert "vm-5" not in shown  # deleted
