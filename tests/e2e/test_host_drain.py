"""Draining a host for real: two hosts of one zone, each a libvirtd of the test's own
(tests/support/fault_lab.PrivateLibvirtd: private state and network namespace, the machine's
libvirtd untouched), a real Celery worker, the project's test image under QEMU (TCG). A
guest boots on host A; the operator drains A; the guest's disks are streamed to B through
the worker, and it boots again there (its console shows a new ready line with the same
instance id and address); A keeps no domain and no disk of it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from compute.models import Instance
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import Host, Zone
from hosts.services import onboarding
from iaas.audit import Actor
from iaas.celery import app, host_queue
from tests.e2e.conftest import import_test_image_and_tiny_flavor, onboard_private_host
from tests.support.fault_lab import PrivateLibvirtd, wait_for

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
HOST_A, HOST_B, ZONE = "drain-a", "drain-b", "fr-drain-1"


def onboard_second_host(daemon: PrivateLibvirtd) -> Host:
    return onboarding.host_onboard(
        actor=Actor.system("e2e"),
        registration=onboarding.HostRegistration(
            name=HOST_B, zone=Zone.objects.get(name=ZONE), libvirt_uri=daemon.uri,
            storage_root=str(daemon.storage_root), domain_type="qemu",
        ),
    )  # fmt: skip


def test_a_drained_host_is_left_empty_and_its_guest_boots_on_the_other(
    broker: Any, private_libvirtd: PrivateLibvirtd, settings: Any, make_tenant, make_caller
):
    host_a = onboard_private_host(settings, private_libvirtd, HOST_A, ZONE)
    image = import_test_image_and_tiny_flavor()
    tenant_client = make_caller(make_tenant("acme"), "member").client()
    operator = make_caller(None, operator=True).client()
    daemon_b = PrivateLibvirtd("lvb")
    queues = [host_queue(HOST_A), host_queue(HOST_B)]
    try:
        daemon_b.start()
        with start_worker(app, queues=queues, pool="solo", perform_ping_check=False):
            answer = tenant_client.post(
                "/api/v1/instances", {"name": "web-1", "flavor": "tiny", "image": str(image.pk)},
                format="json",
            )  # fmt: skip
            assert answer.status_code == 202, answer.content
            instance_id, ip = answer.json()["instance"]["id"], answer.json()["instance"]["ip"]
            url = f"/api/v1/instances/{instance_id}"
            ready = f"ANDROMEDE-READY instance-id={instance_id} ip={ip}"

            def console() -> str:
                return str(tenant_client.get(f"{url}/console").json()["output"])

            wait_for(lambda: ready in console(), 120, "the guest's ready line on host A")
            host_b = onboard_second_host(daemon_b)  # after the boot: A was the only choice

            started = time.monotonic()
            drained = operator.post(f"/api/v1/admin/hosts/{host_a.pk}/drain", {}, format="json")
            assert drained.status_code == 202, drained.content
            assert (drained.json()["refused"], len(drained.json()["operations"])) == ([], 1)
            operation_id = drained.json()["operations"][0]["id"]

            def finished() -> dict | None:
                body = tenant_client.get(f"/api/v1/operations/{operation_id}").json()
                return body if body["status"] in ("succeeded", "failed") else None

            done = wait_for(finished, 120, "the migration to finish")
            assert done["status"] == "succeeded", done
            moved_after = time.monotonic() - started
            # B's console log is a new file: a ready line there is a boot on B.
            hv_b = hypervisor_for(host_b)
            wait_for(
                lambda: ready in hv_b.console_output(instance_id), 60, "a ready line on host B"
            )
            print(f"\ndrain → active on B {moved_after:.1f} s, → ready line "
                  f"{time.monotonic() - started:.1f} s")  # fmt: skip

        shown = tenant_client.get(url).json()
        assert (shown["status"], shown["power_state"], shown["ip"]) == ("active", "running", ip)
        assert Instance.objects.get(pk=instance_id).host_id == host_b.pk
        assert hypervisor_for(host_b).domain_info(instance_id).power_state == "running"
        # Host A is empty: no domain, no disk, no scratch copy of it left.
        hv_a = hypervisor_for(host_a)
        assert instance_id not in {d.name for d in hv_a.list_domains()}
        left = {v.name for v in hv_a.list_storage_volumes(naming.storage_pool(HOST_A, "instances"))}
        assert not [name for name in left if instance_id in name or "migration-" in name], left
        host = operator.get(f"/api/v1/admin/hosts/{host_a.pk}").json()
        assert (host["state"], host["instances"]) == ("draining", 0)
    finally:
        from hosts.hypervisors import close_all

        close_all()
        daemon_b.cleanup()
