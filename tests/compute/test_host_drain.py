"""Draining a host and cold migration, on libvirt's fake hypervisor (test:///default). Both
hosts here are the same fake libvirt (one process-wide connection), so what the guest looks
like after the move is the real-hypervisor test's (tests/e2e/test_host_drain.py); these
check the states, the claims, the refusals and the clean-up of a failure."""

from __future__ import annotations

import io
from types import SimpleNamespace

import libvirt
import pytest
from django.core.management import call_command
from django.db import transaction

from compute.models import Allocation, Instance, Migration
from compute.services.reconciler import check_host_usage, reconcile_host
from compute.worker import migrate as migrate_worker
from compute.worker.steps import ensure_network
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import Host, OrphanReport
from hypervisor.base import DriverError
from iaas.models import AuditEvent
from operations.models import Operation
from operations.services.outcomes import release_abandoned
from operations.worker import run_operation
from tests import factories
from tests.support.instance_api import active_instance, create, run_verb
from volumes.models import VolumeAttachment

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_hosts(cloud: SimpleNamespace, make_caller) -> SimpleNamespace:
    """The `cloud` with an instance `web-1` running on h01, then a second host h02 in the
    same zone, and an operator's client."""
    cloud.instance_id = active_instance(cloud)
    cloud.h02 = factories.host("h02", cloud.zone)
    cloud.operator = make_caller(None, operator=True).client()
    return cloud


def usage(host: Host) -> tuple[int, int, int]:
    host.refresh_from_db()
    return host.allocated_vcpus, host.allocated_memory_mb, host.allocated_disk_gb


def drain(cloud: SimpleNamespace, host: Host) -> dict:
    answer = cloud.operator.post(f"/api/v1/admin/hosts/{host.pk}/drain", {}, format="json")
    assert answer.status_code == 202, answer.content
    return answer.json()


def host_shown(cloud: SimpleNamespace, host: Host) -> dict:
    return cloud.operator.get(f"/api/v1/admin/hosts/{host.pk}").json()


def test_a_drain_moves_the_instance_and_placements_avoid_the_host(two_hosts, settings, monkeypatch):
    cloud = two_hosts
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    # Halfway (its disks copied to h02, still on h01 in the database), a reconciler round
    # finds no orphan of it on either host: the disks arriving on h02 are the migration's.
    midway: list[dict[str, int]] = []

    def network_step(*args, **kwargs):
        midway.extend(reconcile_host(host) for host in (cloud.host, cloud.h02))
        return ensure_network(*args, **kwargs)

    monkeypatch.setattr(migrate_worker, "ensure_network", network_step)
    before = cloud.client.get(f"/api/v1/instances/{cloud.instance_id}").json()

    body = drain(cloud, cloud.host)
    assert (body["host"]["state"], body["host"]["instances"], body["refused"]) == (
        "draining", 1, []
    )  # fmt: skip
    [operation] = body["operations"]
    assert (operation["action"], operation["target_id"]) == ("instance.migrate", cloud.instance_id)
    assert Instance.objects.get(pk=cloud.instance_id).task_state == "migrating"
    # While it runs the target's claim is counted on the target, and it is no drift.
    assert usage(cloud.h02) == usage(cloud.host) == (1, 256, 1)
    assert check_host_usage() == []
    # A new instance avoids the draining host, though it has as much room.
    other = create(cloud.client, cloud.image, name="web-2").json()
    assert Instance.objects.get(pk=other["instance"]["id"]).host_id == cloud.h02.pk

    assert run_operation(operation["id"]) == "succeeded"
    assert len(midway) == 2
    # (libvirt's fake always holds its own domain `test`: an orphan on every host.)
    assert set(OrphanReport.objects.values_list("name", flat=True)) == {"test"}
    steps = Operation.objects.get(pk=operation["id"]).steps
    assert [s["name"] for s in steps] == [
        "shutdown", "wait_shutoff", "clear_target", "copy_root_disk", "copy_seed", "network",
        "still_ours", "undefine_source", "define", "start", "wait_running",
    ]  # fmt: skip
    moved = Instance.objects.get(pk=cloud.instance_id)
    assert (moved.host_id, moved.status, moved.task_state, moved.power_state) == (
        cloud.h02.pk, "active", None, "running"
    )  # fmt: skip
    assert Allocation.objects.get(instance_id=moved.pk).host_id == cloud.h02.pk
    assert usage(cloud.host) == (0, 0, 0)
    assert usage(cloud.h02) == (1 + 1, 256 + 256, 1 + 1)  # web-1 moved in, web-2 born there
    assert check_host_usage() == []
    assert Migration.objects.get(instance_id=moved.pk).status == "succeeded"
    # The tenant sees the same instance, addresses and all.
    after = cloud.client.get(f"/api/v1/instances/{cloud.instance_id}").json()
    for key in ("id", "name", "ip", "zone", "flavor", "status", "power_state"):
        assert after[key] == before[key], key
    # The source pool holds none of its disks; the target's holds them.
    hv = hypervisor_for(cloud.host)
    pools = {h: naming.storage_pool(h.name, "instances") for h in (cloud.host, cloud.h02)}
    names = {h: {v.name for v in hv.list_storage_volumes(p)} for h, p in pools.items()}
    mine = {naming.root_disk(moved.pk), naming.seed(moved.pk)}
    assert not mine & names[cloud.host]
    assert mine <= names[cloud.h02]
    assert hv.domain_info(naming.domain(moved.pk)).power_state == "running"
    # The host is empty; the request and the move are audited.
    assert host_shown(cloud, cloud.host)["instances"] == 0
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"host.drain", "instance.migrate", "instance.migrated"} <= actions
    # The moved instance works as before on its new host: stop, then start.
    run_verb(cloud.client, cloud.instance_id, "stop")
    run_verb(cloud.client, cloud.instance_id, "start")


def test_instances_that_cannot_move_are_listed_and_left_as_they_were(two_hosts, settings):
    """A local volume attached: `local_volume_attached`; no other host with room (h02 is
    disabled): `residency_unsatisfiable`. Nothing changes for those instances."""
    cloud = two_hosts
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    cloud.volume_type = factories.volume_type("standard", max_size_gb=100)
    volume = factories.available_volume(cloud.tenant, volume_type=cloud.volume_type)
    VolumeAttachment.objects.create(
        volume=volume, instance_id=cloud.instance_id, host=cloud.host, device="vdb"
    )  # as an attach leaves it (the fake cannot hot-plug: tests/volumes/test_volume_attach.py)
    body = drain(cloud, cloud.host)
    assert body["operations"] == []
    [refused] = body["refused"]
    assert (refused["instance"], refused["code"]) == (cloud.instance_id, "local_volume_attached")
    assert refused["message"].startswith("Instance web-1 has 1 volume(s) stored on its host")
    VolumeAttachment.objects.filter(volume=volume).delete()

    disabled = cloud.operator.post(
        f"/api/v1/admin/hosts/{cloud.h02.pk}/disable", {"reason": "rack work"}, format="json"
    )
    assert disabled.status_code == 200, disabled.content
    body = drain(cloud, cloud.host)
    assert [r["code"] for r in body["refused"]] == ["residency_unsatisfiable"]
    instance = Instance.objects.get(pk=cloud.instance_id)
    assert (instance.status, instance.task_state, instance.host_id) == (
        "active",
        None,
        cloud.host.pk,
    )
    assert usage(cloud.h02) == (0, 0, 0)
    assert not Migration.objects.exists()
    assert host_shown(cloud, cloud.host)["state"] == "draining"


def test_a_failed_migration_leaves_the_instance_on_its_host_as_it_was(two_hosts, settings):
    """The target's instances pool is gone (a real failure of libvirt's): the copy fails;
    the guest runs again on its source, the target holds nothing and no claim, and the
    operation says why."""
    cloud = two_hosts
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    conn = libvirt.open("test:///default")
    pool = conn.storagePoolLookupByName(naming.storage_pool(cloud.h02.name, "instances"))
    pool.destroy()
    pool.undefine()
    conn.close()

    [operation] = drain(cloud, cloud.host)["operations"]
    assert run_operation(operation["id"]) == "failed"
    failed = Operation.objects.get(pk=operation["id"])
    assert failed.steps[-1]["name"] == "clear_target"  # the first step on the target
    assert failed.error.startswith("The migration failed: volumes of pool")
    instance = Instance.objects.get(pk=cloud.instance_id)
    assert (instance.host_id, instance.status, instance.task_state, instance.power_state) == (
        cloud.host.pk, "active", None, "running"
    )  # fmt: skip
    assert instance.fault.startswith("The migration failed:")
    assert usage(cloud.h02) == (0, 0, 0)
    assert usage(cloud.host) == (1, 256, 1)
    assert Migration.objects.get(instance_id=instance.pk).status == "failed"
    hv = hypervisor_for(cloud.host)
    assert hv.domain_info(naming.domain(instance.pk)).power_state == "running"
    on_source = {v.name for v in hv.list_storage_volumes(naming.storage_pool("h01", "instances"))}
    assert {naming.root_disk(instance.pk), naming.seed(instance.pk)} <= on_source
    # The tenant may act on it again.
    run_verb(cloud.client, cloud.instance_id, "stop")


def test_manage_py_drains_a_stopped_instance_which_stays_stopped(two_hosts, settings):
    cloud = two_hosts
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    run_verb(cloud.client, cloud.instance_id, "stop")
    out = io.StringIO()
    call_command("host_drain", "h01", stdout=out)
    assert "host h01 draining: 1 migration(s) queued" in out.getvalue()
    # Asked again while it is queued: the migration in progress is left alone.
    call_command("host_drain", "h01", stdout=out)
    assert "host h01 draining: 0 migration(s) queued" in out.getvalue()
    operation = Operation.objects.get(action="instance.migrate")
    assert run_operation(str(operation.pk)) == "succeeded"
    operation.refresh_from_db()
    assert "start" not in [s["name"] for s in operation.steps]
    moved = Instance.objects.get(pk=cloud.instance_id)
    assert (moved.host_id, moved.status, moved.power_state) == (cloud.h02.pk, "stopped", "shutoff")
    run_verb(cloud.client, cloud.instance_id, "start")  # it boots on its new host


def test_an_abandoned_migration_releases_its_claim(two_hosts):
    """The sweeper gives up on a migration (its deadline passed, its host lost): the
    target's claim goes with it and the instance is idle again, on its host."""
    cloud = two_hosts
    [operation] = drain(cloud, cloud.host)["operations"]
    assert usage(cloud.h02) == (1, 256, 1)
    release_abandoned(Operation.objects.get(pk=operation["id"]), "its worker never came back")
    assert usage(cloud.h02) == (0, 0, 0)
    migration = Migration.objects.get(instance_id=cloud.instance_id)
    assert (migration.status, migration.error) == ("failed", "its worker never came back")
    instance = Instance.objects.get(pk=cloud.instance_id)
    assert (instance.host_id, instance.task_state) == (cloud.host.pk, None)
    assert check_host_usage() == []


def test_a_run_given_up_mid_copy_stops_before_the_source_goes(two_hosts, settings, monkeypatch):
    """The sweeper gives the migration up while its worker is still copying (a copy past the
    deadline): the worker must not undefine the source and start the guest on the target
    behind the sweeper's back. It stops at `still_ours`, the guest runs again on its source
    (where the database says it is), and no claim is left on the target."""
    cloud = two_hosts
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    [queued] = drain(cloud, cloud.host)["operations"]

    def given_up_meanwhile(hv, ports):
        with transaction.atomic():  # what the sweeper does to an operation past its deadline
            operation = Operation.objects.get(pk=queued["id"])
            Operation.objects.filter(pk=operation.pk).update(status="failed", error="too slow")
            release_abandoned(operation, "too slow")
        ensure_network(hv, ports)

    monkeypatch.setattr(migrate_worker, "ensure_network", given_up_meanwhile)
    run_operation(queued["id"])

    operation = Operation.objects.get(pk=queued["id"])
    assert (operation.status, operation.error) == ("failed", "too slow")  # the sweeper's
    names = [step["name"] for step in operation.steps]
    assert names[-1] == "still_ours", names
    assert "undefine_source" not in names
    instance = Instance.objects.get(pk=cloud.instance_id)
    assert (instance.host_id, instance.task_state) == (cloud.host.pk, None)
    hv = hypervisor_for(cloud.host)
    assert hv.domain_info(naming.domain(instance.pk)).power_state == "running"
    assert usage(cloud.h02) == (0, 0, 0)
    assert Migration.objects.get(instance_id=instance.pk).status == "failed"
    assert check_host_usage() == []


def test_a_failure_after_the_source_was_undefined_defines_it_there_again(
    two_hosts, settings, monkeypatch
):
    """The riskiest point: the source's domain is gone and the target refuses the guest.
    The roll-back defines it on the source again and starts it; the target's copies go."""
    cloud = two_hosts
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    real_spec, calls = migrate_worker.domain_spec, []

    def refused_on_the_target(instance, ports):
        calls.append(instance.host.name)
        if instance.host.name == cloud.h02.name:
            raise DriverError("the target refused the domain")
        return real_spec(instance, ports)

    monkeypatch.setattr(migrate_worker, "domain_spec", refused_on_the_target)
    [queued] = drain(cloud, cloud.host)["operations"]
    assert run_operation(queued["id"]) == "failed"

    operation = Operation.objects.get(pk=queued["id"])
    names = [step["name"] for step in operation.steps]
    assert names[-2:] == ["undefine_source", "define"], names
    assert calls == [cloud.h02.name, cloud.host.name]  # the target's, then the source's again
    instance = Instance.objects.get(pk=cloud.instance_id)
    assert (instance.host_id, instance.status, instance.power_state) == (
        cloud.host.pk, "active", "running"
    )  # fmt: skip
    hv = hypervisor_for(cloud.host)
    assert hv.domain_info(naming.domain(instance.pk)).power_state == "running"
    on_target = {v.name for v in hv.list_storage_volumes(naming.storage_pool("h02", "instances"))}
    assert on_target == set()
    assert usage(cloud.h02) == (0, 0, 0)
    assert Migration.objects.get(instance_id=instance.pk).status == "failed"
