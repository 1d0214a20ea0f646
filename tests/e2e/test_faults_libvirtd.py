"""libvirtd killed (SIGKILL) and started again while operations run, on a libvirtd of the
test's own (tests/support/fault_lab.PrivateLibvirtd; the machine's is never touched), with a
real Celery worker and real guests: the driver waits for the daemon (up to
hypervisor.libvirt.connection.RECONNECT_WINDOW_SECONDS) and reconnects by itself, so creates
in flight finish, none stuck, none lost, none failed; guests keep running across the restart."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from compute.models import Instance
from hosts.hypervisors import hypervisor_for
from hosts.services.heartbeats import host_heartbeat
from hypervisor.base import TransientError
from hypervisor.libvirt import LibvirtHypervisor, connection
from iaas.celery import app, host_queue
from operations.models import Operation
from tests.e2e.conftest import import_test_image_and_tiny_flavor, onboard_private_host
from tests.support.fault_lab import PrivateLibvirtd, wait_for

pytestmark = pytest.mark.hypervisor
HOST = "faults-lv"
CREATES = 3


def settled(operation_ids: list[str]) -> list[Operation] | None:
    operations = list(Operation.objects.filter(pk__in=operation_ids))
    if all(op.status in ("succeeded", "failed") for op in operations):
        return operations
    return None


@pytest.mark.django_db(transaction=True)
def test_libvirtd_killed_and_restarted_under_creates_leaves_no_operation_stuck(
    broker: Any, private_libvirtd: PrivateLibvirtd, settings: Any, make_tenant, make_caller
):
    host = onboard_private_host(settings, private_libvirtd, HOST, "fr-faults-lv")
    image = import_test_image_and_tiny_flavor()
    client = make_caller(make_tenant("acme"), "member").client()
    hv = hypervisor_for(host)

    def create(name: str) -> str:
        answer = client.post(
            "/api/v1/instances", {"name": name, "flavor": "tiny", "image": str(image.pk)},
            format="json",
        )  # fmt: skip
        assert answer.status_code == 202, answer.content
        return str(answer.json()["operation"]["id"])

    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        opened_before = hv.connections_opened  # type: ignore[attr-defined]
        operation_ids = [create(f"web-{n}") for n in range(CREATES)]

        def first_one_is_booting() -> bool:
            steps = Operation.objects.get(pk=operation_ids[0]).steps
            return any(s["name"] == "start" for s in steps)

        wait_for(first_one_is_booting, 90, "the first create to start its guest")
        private_libvirtd.kill()
        killed_at = time.monotonic()
        time.sleep(3)  # creates are mid-way: the rest queued or in a step on a dead daemon
        private_libvirtd.start()
        print(f"\nlibvirtd down {time.monotonic() - killed_at:.1f} s")

        operations = wait_for(lambda: settled(operation_ids), 180, "every create to finish")
        print({str(op.pk)[:8]: (op.status, op.attempts, op.error[:80]) for op in operations})
        # The driver found its connection dead and opened a new one by itself.
        assert hv.connections_opened > opened_before  # type: ignore[attr-defined]

        # The host serves again, through the same worker and the same driver.
        after = create("web-after")
        [done] = wait_for(lambda: settled([after]), 120, "a create after the restart")
        assert done.status == "succeeded", (done.error, done.steps)

    # The daemon was away for less than the driver's reconnect window: every create went
    # through on its first attempt, no step failed, and each guest runs.
    assert host_heartbeat(host.pk) is True
    domains = {d.name: d for d in hv.list_domains()}
    for operation in [*operations, done]:
        assert (operation.status, operation.attempts) == ("succeeded", 1), operation.error
        instance = Instance.objects.get(pk=operation.target_id)
        assert (instance.status, instance.task_state, instance.fault) == ("active", None, "")
        assert domains[str(instance.pk)].power_state == "running"
    assert not Operation.objects.filter(status__in=("queued", "running")).exists()


def test_calls_to_a_libvirtd_gone_longer_than_the_window_fail_fast_until_it_is_back(
    private_libvirtd: PrivateLibvirtd, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(connection, "RECONNECT_WINDOW_SECONDS", 2.0)
    hv = LibvirtHypervisor(private_libvirtd.uri, call_timeout=30)
    try:
        assert hv.facts().cpus > 0
        private_libvirtd.kill()

        started = time.monotonic()
        with pytest.raises(TransientError):
            hv.facts()  # waits for the daemon, for the window only
        waited = time.monotonic() - started
        assert 1.5 < waited < 6, waited
        started = time.monotonic()
        with pytest.raises(TransientError):
            hv.list_domains()  # the window is spent: at once (heartbeats of dead hosts)
        assert time.monotonic() - started < 1

        private_libvirtd.start()
        assert hv.facts().cpus > 0  # back by itself, on a new connection
        assert hv.connections_opened == 2
    finally:
        hv.close()
