"""Issue 4's faults, with real components: a private broker (Redis, and RabbitMQ) that is
stopped and started again, real Celery workers (in-process, and subprocesses killed with
SIGKILL), the sweeper as beat runs it, and the real libvirtd for the killed-worker create."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from compute.models import Allocation, Flavor, Instance
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from hosts.services import onboarding, zones
from iaas.audit import Actor
from iaas.celery import app, host_queue
from images.models import Image
from network.models import Port
from operations.models import Operation
from operations.services import outbox as operations
from tests.e2e.conftest import Broker
from tests.support import hypervisor_lab
from tests.support.fault_lab import shared_database_url, wait_for
from tests.support.local_host import onboarded_local_host
from tests.support.rabbitmq import PrivateRabbitMQ

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = Actor.system("faults")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def unlimited_quotas(settings: Any) -> None:
    settings.DEFAULT_QUOTAS = dict.fromkeys(django_settings.DEFAULT_QUOTAS, -1)


def keypair_client(make_tenant: Any, make_caller: Any, ssh_public_keys: Any) -> Any:
    tenant = make_tenant("acme")
    client = make_caller(tenant, "member").client()
    answer = client.post(
        "/api/v1/keypairs",
        {"name": "laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    return client


# --- 1. The broker is down while creates are accepted ---------------------------------------


@pytest.fixture(params=["redis", "rabbitmq"])
def each_broker(request: pytest.FixtureRequest) -> Broker:
    """Each broker in turn: a private Redis (`broker`), then the session's RabbitMQ."""
    return request.getfixturevalue("broker" if request.param == "redis" else "rabbitmq_broker")


def test_creates_accepted_while_the_broker_is_down_all_end_active(
    each_broker: Broker, unlimited_quotas: None, make_tenant, make_caller, ssh_public_keys
):
    broker = each_broker
    zone = zones.zone_create(
        actor=SYSTEM, region="r1", name="fr-par-1", site="dc", city="c", country="FR",
        jurisdiction="FR",
    )  # fmt: skip
    host = onboarding.host_onboard(
        actor=SYSTEM,
        registration=onboarding.HostRegistration(
            name="h01", zone=zone, libvirt_uri="test:///default", storage_root="/fake/h01"
        ),
    )
    Host.objects.filter(pk=host.pk).update(arch="x86_64")  # the fake reports i686
    Flavor.objects.create(name="small", vcpus=1, memory_mb=256, disk_gb=1)
    image = Image.objects.create(
        name="andromede-test", disk_format="qcow2", status="active", visibility="public",
        size_bytes=1024, virtual_size_bytes=1024 * 1024,
    )  # fmt: skip
    client = keypair_client(make_tenant, make_caller, ssh_public_keys)

    broker.stop()
    slowest = 0.0
    for n in range(10):
        started = time.monotonic()
        answer = client.post(
            "/api/v1/instances",
            {"name": f"web-{n}", "flavor": "small", "image": str(image.pk), "keypair": "laptop"},
            format="json",
        )
        slowest = max(slowest, time.monotonic() - started)
        assert answer.status_code == 202, answer.content
    print(f"\nslowest POST with the broker down: {slowest:.2f} s")
    assert slowest < 2, f"a create hung {slowest:.1f} s on the dead broker"
    queued = Operation.objects.filter(action="instance.create")
    assert queued.count() == 10
    assert set(queued.values_list("status", flat=True)) == {"queued"}
    assert not queued.filter(enqueued_at__isnull=False).exists()
    assert set(Instance.objects.values_list("status", flat=True)) == {"building"}

    broker.start()
    with start_worker(app, queues=[host_queue("h01")], pool="solo", perform_ping_check=False):
        assert len(operations.sweep()) == 10  # as beat runs it
        wait_for(
            lambda: Instance.objects.filter(status="active").count() == 10,
            60,
            "the 10 instances to be active",
        )
        wait_for(
            lambda: Operation.objects.filter(status="succeeded").count() == 10,
            10,
            "the 10 operations to succeed",
        )
    assert Instance.objects.count() == 10
    assert Allocation.objects.count() == 10
    assert Port.objects.count() == 10
    assert list(Operation.objects.values_list("attempts", flat=True)) == [1] * 10
    assert not Operation.objects.exclude(status="succeeded").exists()
    names = {d.name for d in hypervisor_for(host).list_domains()}
    assert {str(pk) for pk in Instance.objects.values_list("pk", flat=True)} <= names
    assert operations.sweep() == []  # nothing left to send


# --- 2. A worker killed with SIGKILL in the middle of a create -------------------------------

HOST = "e2e-faults"


@pytest.fixture
def real_host(settings: Any) -> Iterator[Host]:
    with onboarded_local_host(settings, HOST, "fr-faults-1") as host:
        yield host


@contextmanager
def worker_process(
    broker: Broker, log: Path, *, slow_define: float = 0, lease: int = 5
) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker for HOST's queue in its own process; killed on the way out."""
    env = os.environ | {
        "DATABASE_URL": shared_database_url(),
        "CELERY_BROKER_URL": broker.url,
        "ANDROMEDE_OPERATION_LEASE_SECONDS": str(lease),
        "ANDROMEDE_IMAGE_STORE_DIR": str(django_settings.IMAGE_STORE_DIR),
        "ANDROMEDE_INSTANCE_BOOT_TIMEOUT": "60",
        "ANDROMEDE_TEST_SLOW_DEFINE_SECONDS": str(slow_define) if slow_define else "",
    }
    argv = ["worker", "-Q", host_queue(HOST), "--pool", "solo", "--loglevel", "INFO",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "--hostname", f"faults-{log.stem}@%h"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.slow_worker", *argv],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


@pytest.mark.hypervisor
def test_a_worker_killed_in_the_middle_of_a_create_never_leaves_it_stuck(
    each_broker: Broker, real_host: Host, make_tenant, make_caller, ssh_public_keys
):
    broker = each_broker
    # RabbitMQ gives a dead consumer's unacknowledged message back at once (Redis only after
    # its visibility timeout, hours): the dead worker's lease must still hold when the next
    # worker, started after the kill, receives it.
    rabbitmq = isinstance(broker, PrivateRabbitMQ)
    lease = 15 if rabbitmq else 5
    image_path = hypervisor_lab.ensure_test_image()
    call_command(
        "image_import", "andromede-test", str(image_path), "--disk-format", "qcow2", "--public"
    )
    image = Image.objects.get(name="andromede-test")
    Flavor.objects.create(name="tiny", vcpus=1, memory_mb=256, disk_gb=1)
    client = keypair_client(make_tenant, make_caller, ssh_public_keys)
    logs = Path(tempfile.mkdtemp(prefix="andr-workers-"))
    try:
        with worker_process(broker, logs / "doomed.log", slow_define=60, lease=lease) as doomed:
            answer = client.post(
                "/api/v1/instances",
                {"name": "web-1", "flavor": "tiny", "image": str(image.pk), "keypair": "laptop"},
                format="json",
            )
            assert answer.status_code == 202, answer.content
            instance_id = answer.json()["instance"]["id"]
            operation_id = answer.json()["operation"]["id"]

            def reached_define() -> bool:
                assert doomed.poll() is None, (logs / "doomed.log").read_text()[-3000:]
                steps = Operation.objects.get(pk=operation_id).steps
                return [s["name"] for s in steps][-1:] == ["network"]

            wait_for(reached_define, 90, "the doomed worker to reach the define step")
            time.sleep(0.5)  # inside the slow define step now
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(10)

        operation = Operation.objects.get(pk=operation_id)
        assert (operation.status, operation.attempts) == ("running", 1), operation.error
        instance = Instance.objects.get(pk=instance_id)
        assert (instance.status, instance.task_state) == ("building", "spawning")  # stuck…
        hv = hypervisor_for(real_host)
        assert instance_id not in {d.name for d in hv.list_domains()}

        if isinstance(broker, PrivateRabbitMQ):
            server = broker
            wait_for(
                lambda: server.ready_messages(host_queue(HOST)) == 1,
                10,
                "RabbitMQ to give the killed worker's message back",
            )
        with worker_process(broker, logs / "rescuer.log", lease=lease) as rescuer:
            if rabbitmq:  # the new worker receives it and leaves it: the lease holds
                wait_for(
                    lambda: "'skipped'" in (logs / "rescuer.log").read_text(),
                    lease,
                    "the new worker to leave the message of a leased operation",
                )
            # …until its lease expires and the sweeper (as beat runs it) sends it again.
            assert operations.sweep() == []  # the lease still holds: nothing to resend

            def lease_expired() -> bool:
                expires = Operation.objects.get(pk=operation_id).lease_expires_at
                return expires is not None and expires < timezone.now()

            wait_for(
                lease_expired,
                15,
                "the dead worker's lease to expire",
            )
            assert operations.sweep() == [operation_id]

            def settled() -> Operation | None:
                assert rescuer.poll() is None, (logs / "rescuer.log").read_text()[-3000:]
                op = Operation.objects.get(pk=operation_id)
                return op if op.status in ("succeeded", "failed") else None

            operation = wait_for(settled, 120, "the operation to finish on the new worker")
        assert operation.status == "succeeded", (operation.error, operation.steps)
        assert operation.attempts == 2
        instance.refresh_from_db()
        assert (instance.status, instance.task_state, instance.power_state) == (
            "active",
            None,
            "running",
        )
        domains = [d for d in hv.list_domains() if d.instance_id == instance_id]
        assert len(domains) == 1
        assert domains[0].power_state == "running"
        assert Allocation.objects.filter(instance_id=instance_id).count() == 1
        assert Port.objects.filter(device_id=instance_id).count() == 1
        assert Allocation.objects.count() == Port.objects.count() == Instance.objects.count() == 1
    finally:
        shutil.rmtree(logs, ignore_errors=True)
