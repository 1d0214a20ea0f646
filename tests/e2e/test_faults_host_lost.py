"""A host lost in the middle of an operation: a second host, made of a libvirtd of the test's
own and its own worker process on its own queue, both killed (SIGKILL) while a create runs
there. Its heartbeats stop, it is marked down, its operation is failed with a reason the
tenant can act on (`operation.host_lost` in the audit log), and nothing is sent to the first
host without an operator."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from compute.models import Allocation, Instance
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from hosts.services.heartbeats import heartbeat_all, hosts_mark_down_missed
from hosts.services.hosts import host_set_state
from iaas.audit import Actor
from iaas.celery import host_queue
from iaas.models import AuditEvent
from operations.models import Operation
from operations.services.host_lost import HOST_LOST_REASON
from operations.tasks import sweep_operations
from tests import factories
from tests.e2e.conftest import import_test_image_and_tiny_flavor, onboard_private_host
from tests.support.fault_lab import (
    PrivateLibvirtd,
    shared_database_url,
    stop_process,
    wait_for,
    worker_subprocess,
)

OPERATOR = Actor.system("operator")
LOST = "faults-lost"


@pytest.mark.hypervisor
@pytest.mark.django_db(transaction=True)
def test_a_host_lost_mid_create_is_marked_down_and_its_operation_failed_not_moved(
    broker: Any, private_libvirtd: PrivateLibvirtd, settings: Any, make_tenant, make_caller
):
    settings.HOST_DOWN_AFTER = timedelta(seconds=3)
    lost = onboard_private_host(settings, private_libvirtd, LOST, "fr-faults-lost")
    # The survivor: same zone, room for the instance, libvirt's fake hypervisor. Disabled
    # while the create is placed (so it lands on the host to lose), enabled before the loss
    # (so it is a valid target, were anything to be moved automatically).
    survivor = factories.host("faults-survivor", lost.zone, cpus=64, memory_mb=65536, disk_gb=1000)
    host_set_state(actor=OPERATOR, host=survivor, state=Host.State.DISABLED, reason="placement")
    image = import_test_image_and_tiny_flavor()
    client = make_caller(make_tenant("acme"), "member").client()

    logs = Path(tempfile.mkdtemp(prefix="andr-lost-"))
    env = os.environ | {
        "DATABASE_URL": shared_database_url(),
        "CELERY_BROKER_URL": broker.url,
        "ANDROMEDE_OPERATION_LEASE_SECONDS": "5",
        "ANDROMEDE_IMAGE_STORE_DIR": str(django_settings.IMAGE_STORE_DIR),
        "ANDROMEDE_IMAGE_STORE_ZONE": lost.zone.name,
    }
    worker = worker_subprocess(host_queue(LOST), env, logs / "lost-worker.log", slow_define=60)
    try:
        answer = client.post(
            "/api/v1/instances", {"name": "web-1", "flavor": "tiny", "image": str(image.pk)},
            format="json",
        )  # fmt: skip
        assert answer.status_code == 202, answer.content
        instance_id = answer.json()["instance"]["id"]
        operation_id = answer.json()["operation"]["id"]
        assert Instance.objects.get(pk=instance_id).host_id == lost.pk

        def in_define() -> bool:
            assert worker.poll() is None, (logs / "lost-worker.log").read_text()[-3000:]
            steps = Operation.objects.get(pk=operation_id).steps
            return [s["name"] for s in steps][-1:] == ["network"]

        wait_for(in_define, 120, "the create to reach its define step on the host to lose")
        assert set(heartbeat_all()["answered"]) == {LOST, "faults-survivor"}
        host_set_state(actor=OPERATOR, host=survivor, state=Host.State.ENABLED)

        # The host is lost: its libvirtd and its worker die together.
        worker.kill()
        worker.wait(10)
        private_libvirtd.kill()
        lost_at = time.monotonic()

        def beat() -> bool:
            """One round of what beat runs: heartbeats, then the operations sweeper."""
            heartbeat_all()
            sweep_operations()
            return Operation.objects.get(pk=operation_id).status == "failed"

        wait_for(beat, 90, "the lost host's operation to fail", every=1)
        print(f"\nfailed {time.monotonic() - lost_at:.1f} s after the host was lost")
    finally:
        stop_process(worker)
        shutil.rmtree(logs, ignore_errors=True)

    lost.refresh_from_db()
    assert lost.state == Host.State.DOWN
    assert lost.last_heartbeat_error
    operation = Operation.objects.get(pk=operation_id)
    assert operation.error == HOST_LOST_REASON
    assert operation.attempts == 1  # never run again
    instance = Instance.objects.get(pk=instance_id)
    assert (instance.status, instance.task_state) == ("error", None)
    assert instance.fault == HOST_LOST_REASON
    # What the tenant reads through the API says so too.
    seen = client.get(f"/api/v1/operations/{operation_id}").json()
    assert seen["status"] == "failed"
    assert "stopped answering" in seen["error"]
    assert client.get(f"/api/v1/instances/{instance_id}").json()["status"] == "error"

    # Nothing moved to the survivor, nothing sent anywhere again.
    assert instance.host_id == lost.pk
    assert not Operation.objects.filter(host_name="faults-survivor").exists()
    assert not Allocation.objects.filter(host=survivor).exists()
    assert instance_id not in {d.name for d in hypervisor_for(survivor).list_domains()}
    assert Operation.objects.count() == 1
    sweep_operations()  # a later round changes nothing
    assert Operation.objects.get(pk=operation_id).status == "failed"

    events = AuditEvent.objects.filter(action__in=("host.down", "operation.host_lost"))
    assert {(e.action, e.target_id) for e in events} == {
        ("host.down", str(lost.pk)),
        ("operation.host_lost", operation_id),
    }


# --- The rule, on libvirt's fake hypervisor (fast lane) ----------------------------------------


def _three_creates(cloud: Any) -> list[Operation]:
    operations = []
    for name in ("queued", "held", "expired"):
        _, operation = factories.instance(cloud.tenant, flavor=cloud.flavor, image=cloud.image,
                                          name=name)  # fmt: skip
        operations.append(operation)
    _, held, expired = operations
    # The ORM: the states a worker leaves behind — one still holds its lease (it runs, on a
    # host whose libvirt stopped answering), the other's lease ran out (the worker died).
    now = timezone.now()
    Operation.objects.filter(pk=held.pk).update(
        status="running", lease_owner="w:1", lease_expires_at=now + timedelta(minutes=5)
    )
    Operation.objects.filter(pk=expired.pk).update(
        status="running", lease_owner="w:2", lease_expires_at=now - timedelta(seconds=1)
    )
    return operations


def _statuses(operations: list[Operation]) -> list[str]:
    return [Operation.objects.get(pk=op.pk).status for op in operations]


def test_operations_of_a_host_that_answers_are_never_failed_as_lost(cloud):
    operations = _three_creates(cloud)
    assert sweep_operations()["host_lost"] == []
    assert _statuses(operations) == ["queued", "running", "running"]
    assert not AuditEvent.objects.filter(action="operation.host_lost").exists()


def test_a_down_host_fails_what_no_worker_holds_and_keeps_what_a_worker_still_runs(cloud, settings):
    queued, held, expired = _three_creates(cloud)
    settings.HOST_DOWN_AFTER = timedelta(seconds=1)
    # The ORM: the host's last heartbeat, a minute ago (its heartbeats stopped since).
    Host.objects.filter(pk=cloud.host.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(minutes=1)
    )
    assert hosts_mark_down_missed() == ["h01"]

    failed = sweep_operations()["host_lost"]
    assert sorted(failed) == sorted([str(queued.pk), str(expired.pk)])
    assert _statuses([queued, held, expired]) == ["failed", "running", "failed"]
    for operation in (queued, expired):
        operation.refresh_from_db()
        assert operation.error == HOST_LOST_REASON
        instance = Instance.objects.get(pk=operation.target_id)
        assert (instance.status, instance.task_state, instance.fault) == (
            "error", None, HOST_LOST_REASON,
        )  # fmt: skip
    held_instance = Instance.objects.get(pk=held.target_id)
    assert (held_instance.status, held_instance.fault) == ("building", "")
    events = AuditEvent.objects.filter(action="operation.host_lost")
    assert sorted(e.target_id for e in events) == sorted(failed)
    assert all(e.tenant_id == cloud.tenant.pk and "h01" not in str(e.details) for e in events)
    # Sent nowhere: not even to its own host's queue again.
    assert Operation.objects.filter(pk__in=failed, enqueued_at__isnull=False).count() == 0
    assert sweep_operations()["host_lost"] == []  # nothing twice
