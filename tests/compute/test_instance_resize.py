"""Resize on libvirt's fake hypervisor: the extra capacity is claimed first on the same
host, the worker redefines the domain, then confirm keeps the new size and revert the old."""

from __future__ import annotations

import libvirt
import pytest

from compute.models import Allocation, Instance
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from operations.models import Operation
from operations.worker import run_operation
from tenants import services as tenant_services
from tests import factories
from tests.factories import SYSTEM
from tests.support.instance_api import active_instance, run_verb, shown, verb


@pytest.fixture
def big(cloud):
    return factories.flavor("big", vcpus=2, memory_mb=512, disk_gb=2)


def sizes(instance_id: str) -> tuple[int, int, int]:
    instance = Instance.objects.get(pk=instance_id)
    return instance.vcpus, instance.memory_mb, instance.disk_gb


def allocated(host: Host) -> tuple[int, int, int]:
    host.refresh_from_db()
    return host.allocated_vcpus, host.allocated_memory_mb, host.allocated_disk_gb


def allocation(instance_id: str) -> tuple[int, int, int]:
    row = Allocation.objects.get(instance_id=instance_id)
    return row.vcpus, row.memory_mb, row.disk_gb


def resized(cloud, instance_id: str, flavor: str = "big") -> dict:
    operation = run_verb(cloud.client, instance_id, "resize", {"flavor": flavor})
    assert shown(cloud.client, instance_id)[:2] == ("verify_resize", None)
    return operation


@pytest.mark.django_db
def test_resize_up_then_confirm(cloud, big, settings):
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    instance_id = active_instance(cloud)
    assert allocated(cloud.host) == (1, 256, 1)

    operation = resized(cloud, instance_id)
    assert [s["name"] for s in operation["steps"]] == [
        "shutdown", "wait_shutoff", "grow_disk", "define", "start", "wait_running",
    ]  # fmt: skip
    body = cloud.client.get(f"/api/v1/instances/{instance_id}").json()
    assert (body["flavor"], body["power_state"]) == ("big", "running")
    assert sizes(instance_id) == allocation(instance_id) == allocated(cloud.host) == (2, 512, 2)
    params = Operation.objects.get(pk=operation["id"]).params
    assert (params["old"]["memory_mb"], params["new"]["memory_mb"]) == (256, 512)
    assert Instance.objects.get(pk=instance_id).previous_flavor == cloud.flavor
    hv = hypervisor_for(cloud.host)
    assert hv.domain_info(instance_id).power_state == "running"

    answer = verb(cloud.client, instance_id, "confirm-resize")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["status"], answer.json()["flavor"]) == ("active", "big")
    assert sizes(instance_id) == allocation(instance_id) == allocated(cloud.host) == (2, 512, 2)
    assert Instance.objects.get(pk=instance_id).previous_flavor is None
    assert Allocation.objects.filter(instance_id=instance_id).count() == 1

    # Deleting releases the new size entirely.
    assert cloud.client.delete(f"/api/v1/instances/{instance_id}").status_code == 202
    op = Operation.objects.filter(target_id=instance_id, action="instance.delete").get()
    assert run_operation(str(op.pk)) == "succeeded"
    assert allocated(cloud.host) == (0, 0, 0)


@pytest.mark.django_db
def test_resize_then_revert_restores_the_old_size(cloud, big, settings):
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    instance_id = active_instance(cloud)
    resized(cloud, instance_id)
    assert allocated(cloud.host) == (2, 512, 2)

    answer = verb(cloud.client, instance_id, "revert-resize")
    assert answer.status_code == 202, answer.content
    assert answer.json()["operation"]["action"] == "instance.revert_resize"
    assert shown(cloud.client, instance_id)[:2] == ("resizing", "reverting_resize")
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    operation = cloud.client.get(f"/api/v1/operations/{answer.json()['operation']['id']}").json()
    assert [s["name"] for s in operation["steps"]] == [
        "shutdown", "wait_shutoff", "define", "start", "wait_running",
    ]  # fmt: skip
    body = cloud.client.get(f"/api/v1/instances/{instance_id}").json()
    assert (body["status"], body["task_state"], body["flavor"]) == ("active", None, "small")
    assert sizes(instance_id) == allocation(instance_id) == allocated(cloud.host) == (1, 256, 1)
    assert Instance.objects.get(pk=instance_id).previous_flavor is None


@pytest.mark.django_db
def test_resize_of_a_stopped_instance_stays_stopped(cloud, big, settings):
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    instance_id = active_instance(cloud)
    run_verb(cloud.client, instance_id, "stop")
    operation = resized(cloud, instance_id)
    assert "start" not in [s["name"] for s in operation["steps"]]
    answer = verb(cloud.client, instance_id, "confirm-resize")
    assert answer.json()["status"] == "stopped"


@pytest.mark.django_db
def test_wrong_states_are_refused_and_change_nothing(cloud, big, settings):
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    instance_id = active_instance(cloud)
    for name in ("confirm-resize", "revert-resize"):
        answer = verb(cloud.client, instance_id, name)
        assert answer.status_code == 409, answer.content
        assert answer.json()["error"]["code"] == "wrong_state"
    # While the resize runs, nothing else may start.
    answer = verb(cloud.client, instance_id, "resize", {"flavor": "big"})
    assert answer.status_code == 202
    assert shown(cloud.client, instance_id)[:2] == ("resizing", "resizing")
    for name, body in (("resize", {"flavor": "big"}), ("stop", {}), ("confirm-resize", {})):
        refused = verb(cloud.client, instance_id, name, body)
        assert refused.status_code == 409, (name, refused.content)
    assert allocated(cloud.host) == (2, 512, 2)
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    # In verify_resize, another resize or a stop is refused.
    for name, body in (("resize", {"flavor": "small"}), ("stop", {})):
        assert verb(cloud.client, instance_id, name, body).status_code == 409
    assert shown(cloud.client, instance_id)[:2] == ("verify_resize", None)


@pytest.mark.django_db
def test_no_room_on_the_host_is_refused_and_changes_nothing(cloud, settings):
    instance_id = active_instance(cloud)
    cloud.host.refresh_from_db()
    factories.flavor("huge", vcpus=1, memory_mb=cloud.host.memory_mb * 100, disk_gb=1)
    tenant_services.quota_set(actor=SYSTEM, tenant=cloud.tenant, resource="ram_mb", limit=-1)
    before = allocated(cloud.host)
    answer = verb(cloud.client, instance_id, "resize", {"flavor": "huge"})
    assert answer.status_code == 409, answer.content
    assert answer.json()["error"]["code"] == "no_valid_host"
    assert shown(cloud.client, instance_id)[:2] == ("active", None)
    assert allocated(cloud.host) == before
    assert sizes(instance_id) == allocation(instance_id) == (1, 256, 1)
    assert not Operation.objects.filter(action="instance.resize").exists()


@pytest.mark.django_db
def test_quota_exceeded_is_refused_and_changes_nothing(cloud, big):
    instance_id = active_instance(cloud)
    tenant_services.quota_set(actor=SYSTEM, tenant=cloud.tenant, resource="ram_mb", limit=300)
    answer = verb(cloud.client, instance_id, "resize", {"flavor": "big"})
    assert answer.status_code == 403, answer.content
    assert answer.json()["error"]["code"] == "quota_exceeded"
    assert shown(cloud.client, instance_id)[:2] == ("active", None)
    assert sizes(instance_id) == allocation(instance_id) == allocated(cloud.host) == (1, 256, 1)
    assert Instance.objects.get(pk=instance_id).flavor == cloud.flavor


@pytest.mark.django_db
def test_disk_cannot_shrink(cloud, big, settings):
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    instance_id = active_instance(cloud)
    resized(cloud, instance_id)
    assert verb(cloud.client, instance_id, "confirm-resize").status_code == 200
    answer = verb(cloud.client, instance_id, "resize", {"flavor": "small"})
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "flavor_disk_smaller"
    assert shown(cloud.client, instance_id)[:2] == ("active", None)
    assert sizes(instance_id) == allocated(cloud.host) == (2, 512, 2)


@pytest.mark.django_db
def test_a_failed_resize_is_rolled_back_to_the_old_flavor(cloud, big, settings, monkeypatch):
    from hypervisor.base import DriverError
    from hypervisor.libvirt import LibvirtHypervisor
    from iaas.models import AuditEvent

    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    instance_id = active_instance(cloud)
    # Fault injection (libvirt's fake starts any guest): the host refuses to start the
    # bigger guest once, as a real host short of memory would; the rollback's start works.
    real_start = LibvirtHypervisor.start_domain
    calls = {"n": 0}

    def start_once_refused(self, name):
        calls["n"] += 1
        if calls["n"] == 1:
            raise DriverError("cannot allocate memory for the guest")
        return real_start(self, name)

    monkeypatch.setattr(LibvirtHypervisor, "start_domain", start_once_refused)
    answer = verb(cloud.client, instance_id, "resize", {"flavor": "big"})
    assert answer.status_code == 202, answer.content
    assert allocated(cloud.host) == (2, 512, 2)  # claimed first
    assert run_operation(answer.json()["operation"]["id"]) == "failed"

    body = cloud.client.get(f"/api/v1/instances/{instance_id}").json()
    assert (body["status"], body["task_state"], body["power_state"], body["flavor"]) == (
        "active", None, "running", "small",
    )  # fmt: skip
    assert body["fault"].startswith("The resize to flavor big failed: ")
    assert body["fault"].endswith("The instance is back on flavor small.")
    # The extra capacity is released; the domain runs with the old size again.
    assert sizes(instance_id) == allocation(instance_id) == allocated(cloud.host) == (1, 256, 1)
    assert Instance.objects.get(pk=instance_id).previous_flavor is None
    hv = hypervisor_for(cloud.host)
    assert hv.domain_info(instance_id).power_state == "running"
    conn = libvirt.open("test:///default")  # the same fake while our driver keeps it open
    try:
        assert "<memory unit='KiB'>262144</memory>" in conn.lookupByName(instance_id).XMLDesc(0)
    finally:
        conn.close()
    operation = Operation.objects.get(pk=answer.json()["operation"]["id"])
    assert operation.status == "failed"
    assert operation.error == body["fault"]
    event = AuditEvent.objects.get(action="instance.resize", outcome="failed")
    assert event.details["rolled_back"] is True
    # The tenant may try again at once.
    assert verb(cloud.client, instance_id, "resize", {"flavor": "big"}).status_code == 202


@pytest.mark.django_db
def test_a_resize_that_cannot_be_rolled_back_ends_in_error(cloud, big, settings):
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 1
    instance_id = active_instance(cloud)
    answer = verb(cloud.client, instance_id, "resize", {"flavor": "big"})
    Host.objects.filter(pk=cloud.host.pk).update(
        libvirt_uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    )
    assert run_operation(answer.json()["operation"]["id"]) == "failed"
    instance = Instance.objects.get(pk=instance_id)
    assert (instance.status, instance.task_state) == ("error", None)
    assert instance.fault.startswith("The resize failed: ")
    # The larger claim is kept until the instance is deleted (it may be using it).
    assert allocation(instance_id) == allocated(cloud.host) == (2, 512, 2)
