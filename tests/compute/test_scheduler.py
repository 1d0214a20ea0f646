"""The scheduler's per-host usage columns (Host.allocated_*): kept by claim and
release_allocation under the host row lock, verified by the reconciler; and the filters and
weigher that read them."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, transaction

from compute.models import Allocation, Flavor, Instance
from compute.services import scheduler
from compute.services.reconciler import check_host_usage
from compute.services.scheduler import NoValidHost, PlacementRequest, candidates, claim
from hosts.models import Host
from iaas.models import AuditEvent
from operations.worker import run_operation
from tests import factories
from tests.support.instance_api import create

SMALL = {"vcpus": 1, "memory_mb": 256, "disk_gb": 1}


def usage(host: Host) -> tuple[int, int, int]:
    host.refresh_from_db()
    return (host.allocated_vcpus, host.allocated_memory_mb, host.allocated_disk_gb)


def sums(host: Host) -> tuple[int, int, int]:
    rows = Allocation.objects.filter(host=host)
    return (
        sum(rows.values_list("vcpus", flat=True)),
        sum(rows.values_list("memory_mb", flat=True)),
        sum(rows.values_list("disk_gb", flat=True)),
    )


def plain_host(name: str, zone, **fields) -> Host:
    """A host row with exactly these facts. The ORM: the scheduler reads only these columns,
    and onboarding would ask the fake hypervisor for them (which reports its own fixed size,
    an i686 arch and one state); these tests need many hosts of chosen sizes, arches and
    states, and never touch a hypervisor."""
    values = {
        "cpus": 16, "memory_mb": 64 * 1024, "disk_gb": 1000, "reserved_memory_mb": 0,
        "cpu_allocation_ratio": 1.0, "arch": "x86_64", "domain_type": "test",
    } | fields  # fmt: skip
    return Host.objects.create(
        name=name, zone=zone, libvirt_uri="test:///default", storage_root=f"/fake/{name}",
        **values,
    )  # fmt: skip


def new_instance(tenant, flavor: Flavor) -> Instance:
    """An instance not placed yet. The ORM: instance_create places as it creates, and these
    tests call the scheduler's claim themselves."""
    return Instance.objects.create(
        tenant=tenant, name="vm", flavor=flavor, image_id=uuid.uuid4(), vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb, disk_gb=flavor.disk_gb,
    )  # fmt: skip


def request(**fields) -> PlacementRequest:
    return PlacementRequest(**(SMALL | {"jurisdictions": ("FR",)} | fields))


# --- the columns follow the allocations ----------------------------------------------------


@pytest.mark.django_db
def test_a_claim_adds_to_the_host_and_a_delete_takes_it_back(cloud):
    assert usage(cloud.host) == (0, 0, 0)
    created = create(cloud.client, cloud.image).json()
    assert usage(cloud.host) == (1, 256, 1) == sums(cloud.host)
    assert run_operation(created["operation"]["id"]) == "succeeded"
    second = create(cloud.client, cloud.image, name="web-2").json()
    assert usage(cloud.host) == (2, 512, 2)
    assert run_operation(second["operation"]["id"]) == "succeeded"
    deleted = cloud.client.delete(f"/api/v1/instances/{created['instance']['id']}").json()
    assert run_operation(deleted["operation"]["id"]) == "succeeded"
    assert usage(cloud.host) == (1, 256, 1) == sums(cloud.host)
    deleted = cloud.client.delete(f"/api/v1/instances/{second['instance']['id']}").json()
    assert run_operation(deleted["operation"]["id"]) == "succeeded"
    assert usage(cloud.host) == (0, 0, 0)
    assert check_host_usage() == []


@pytest.mark.django_db
def test_a_failed_build_gives_the_capacity_back(cloud):
    created = create(cloud.client, cloud.image).json()
    assert usage(cloud.host) == (1, 256, 1)
    Host.objects.filter(pk=cloud.host.pk).update(domain_type="kvm")  # refused by the fake
    assert run_operation(created["operation"]["id"]) == "failed"
    assert usage(cloud.host) == (0, 0, 0)
    assert not Allocation.objects.exists()


@pytest.mark.django_db
def test_release_subtracts_once_and_is_idempotent(cloud):
    instance = new_instance(cloud.tenant, cloud.flavor)
    with transaction.atomic():
        host = claim(instance, request())
    assert host == cloud.host
    assert (host.allocated_vcpus, host.allocated_memory_mb) == (1, 256)  # the returned row too
    assert usage(cloud.host) == (1, 256, 1)
    with transaction.atomic():
        assert scheduler.release_allocation(instance) is True
    with transaction.atomic():
        assert scheduler.release_allocation(instance) is False
    assert usage(cloud.host) == (0, 0, 0)


@pytest.mark.django_db
def test_the_columns_can_never_go_negative(cloud):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError), transaction.atomic():
        Host.objects.filter(pk=cloud.host.pk).update(allocated_vcpus=-1)


# --- the reconciler keeps them honest --------------------------------------------------------


@pytest.mark.django_db
def test_check_host_usage_corrects_a_tampered_host_and_audits_it(cloud):
    create(cloud.client, cloud.image)
    other = plain_host("h02", cloud.zone)
    Host.objects.filter(pk=cloud.host.pk).update(allocated_vcpus=7, allocated_memory_mb=1)
    Host.objects.filter(pk=other.pk).update(allocated_disk_gb=5)  # no allocations at all
    assert sorted(check_host_usage()) == ["h01", "h02"]
    assert usage(cloud.host) == (1, 256, 1)
    assert usage(other) == (0, 0, 0)
    assert AuditEvent.objects.filter(action="host.usage_corrected").count() == 2
    event = AuditEvent.objects.get(action="host.usage_corrected", target_id=str(cloud.host.pk))
    assert event.details == {
        "recorded": {"allocated_vcpus": 7, "allocated_memory_mb": 1, "allocated_disk_gb": 1},
        "allocations": {"allocated_vcpus": 1, "allocated_memory_mb": 256, "allocated_disk_gb": 1},
    }
    assert check_host_usage() == []  # nothing left to correct, nothing audited twice
    assert AuditEvent.objects.filter(action="host.usage_corrected").count() == 2


@pytest.mark.django_db
def test_the_reconcile_task_runs_the_usage_check(cloud):
    from compute.tasks import reconcile

    Host.objects.filter(pk=cloud.host.pk).update(allocated_memory_mb=4096)
    assert reconcile()["host_usage_corrected"] == ["h01"]
    assert usage(cloud.host) == (0, 0, 0)


# --- filters and weigher on the columns ------------------------------------------------------


@pytest.mark.django_db
def test_a_full_host_is_not_a_candidate_and_claim_refuses(db, make_tenant):
    zone = factories.zone("fr-par-1")
    host = plain_host("h1", zone, cpus=2)
    # The ORM: the usage columns as if instances held that much (the filters read only them).
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=2)
    assert list(candidates(request())) == []
    flavor = factories.flavor("small", vcpus=1, memory_mb=256, disk_gb=1)
    with pytest.raises(NoValidHost), transaction.atomic():
        claim(new_instance(make_tenant("acme"), flavor), request())
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=1)
    assert list(candidates(request())) == [host]


@pytest.mark.django_db
def test_residency_and_zone_filters_still_apply(db):
    par, lyon = factories.zone("fr-par-1"), factories.zone("fr-lyo-1")
    fra = factories.zone("de-fra-1", "DE")
    h_par, h_lyon = plain_host("par", par), plain_host("lyon", lyon)
    h_fra = plain_host("fra", fra, memory_mb=10**6)  # the roomiest, but in Germany
    plain_host("off", par, state=Host.State.DISABLED)
    plain_host("arm", par, arch="aarch64")
    assert set(candidates(request())) == {h_par, h_lyon}
    assert set(candidates(request(zone="fr-lyo-1"))) == {h_lyon}
    assert set(candidates(request(jurisdictions=("DE",)))) == {h_fra}
    assert set(candidates(request(jurisdictions=("DE", "FR")))) == {h_par, h_lyon, h_fra}
    assert list(candidates(request(jurisdictions=("DE",), zone="fr-par-1"))) == []


@pytest.mark.django_db
def test_spread_prefers_the_most_free_ram_and_pack_the_least(db):
    zone = factories.zone("fr-par-1")
    a = plain_host("a", zone, memory_mb=32 * 1024)
    b = plain_host("b", zone, memory_mb=64 * 1024)
    c = plain_host("c", zone, memory_mb=64 * 1024, ram_allocation_ratio=1.5)
    # Free RAM: a 32 GiB, b 64 - 40 = 24 GiB, c 96 GiB.
    Host.objects.filter(pk=b.pk).update(allocated_memory_mb=40 * 1024)
    assert list(candidates(request(strategy="spread"))) == [c, a, b]
    assert list(candidates(request(strategy="pack"))) == [b, a, c]


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_overcommit_a_host(make_tenant):
    zone = factories.zone("fr-par-1")
    # Room for exactly three 1-vCPU instances on each host: six of twenty fit.
    hosts = [plain_host(name, zone, cpus=3) for name in ("h1", "h2")]
    flavor = factories.flavor("small", vcpus=1, memory_mb=256, disk_gb=1)
    tenant = make_tenant("acme")
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            instance = new_instance(tenant, flavor)
            barrier.wait(timeout=30)
            try:
                with transaction.atomic():
                    claim(instance, request())
                outcome = "placed"
            except NoValidHost:
                outcome = "refused"
            with lock:
                outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["placed"] * 6 + ["refused"] * 14
    for host in hosts:
        assert usage(host) == (3, 768, 3) == sums(host)
    assert check_host_usage() == []
