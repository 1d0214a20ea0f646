"""The console a tenant reads is what the host's worker pushed (M11): GET
/instances/{id}/console answers from the cache with the capture's age, opens no hypervisor
connection, and only enqueues a refresh when the capture is stale. The host is libvirt's fake
(test:///default) with its instances' directory on this machine, so the console log the
domain names is a real file the test writes the guest's output into."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import libvirt
import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.utils import timezone

from compute.selectors import console_cache_key, console_capture
from compute.services.console import console_push, console_refresh_all
from hosts import hypervisors
from hosts.models import Host
from iaas.celery import app, host_queue
from tests.support.instance_api import active_instance, create

pytestmark = pytest.mark.django_db


@pytest.fixture
def console_dir(cloud, tmp_path) -> Path:
    """The host keeps its instances (and their console logs) under tmp_path."""
    Host.objects.filter(pk=cloud.host.pk).update(storage_root=str(tmp_path))
    cloud.host.refresh_from_db()
    (tmp_path / "instances").mkdir()
    return tmp_path / "instances"


def guest_prints(console_dir: Path, instance_id: str, text: str) -> None:
    with (console_dir / f"instance-{instance_id}-console.log").open("a") as log:
        log.write(text)


@pytest.fixture
def as_api_process(monkeypatch, settings):
    """Call it to make this process the API from then on: no hypervisor access, and any
    libvirt connection attempt fails the test (undone before the fake hypervisor's reset)."""
    with monkeypatch.context() as patch:

        def become() -> None:
            settings.HYPERVISOR_ACCESS = False

            def refuse(*args, **kwargs):
                raise AssertionError("the API opened a libvirt connection")

            for name in ("open", "openAuth", "openReadOnly"):
                patch.setattr(libvirt, name, refuse)
            patch.setattr(hypervisors, "hypervisor_for_uri", refuse)

        yield become


def test_before_any_capture_the_console_is_empty_with_no_age(cloud, console_dir):
    instance_id = active_instance(cloud)
    cache.delete(console_cache_key(instance_id))
    body = cloud.client.get(f"/api/v1/instances/{instance_id}/console").json()
    assert body == {"output": "", "captured_at": None, "age_seconds": None}


def test_the_console_shows_what_the_worker_pushed_without_touching_the_hypervisor(
    cloud, console_dir, as_api_process
):
    instance_id = active_instance(cloud)
    guest_prints(console_dir, instance_id, "login: ANDROMEDE-READY\n")
    assert console_push(instance_id) is True  # the host's worker
    guest_prints(console_dir, instance_id, "printed after the capture\n")

    as_api_process()

    answer = cloud.client.get(f"/api/v1/instances/{instance_id}/console")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["output"] == "login: ANDROMEDE-READY\n"  # the capture, not the live file
    assert body["captured_at"] is not None
    assert 0 <= body["age_seconds"] < 60


def test_a_worker_that_cannot_reach_the_host_keeps_the_last_capture(cloud, console_dir):
    instance_id = active_instance(cloud)
    guest_prints(console_dir, instance_id, "first boot\n")
    assert console_push(instance_id)
    before = console_capture(instance_id)
    Host.objects.filter(pk=cloud.host.pk).update(
        libvirt_uri="qemu+unix:///system?socket=/nonexistent/sock"
    )
    assert console_push(instance_id) is False
    assert console_capture(instance_id) == before


@pytest.mark.django_db(transaction=True)
def test_the_hosts_worker_pushes_after_each_operation_and_when_a_read_finds_it_stale(
    cloud, console_dir, settings
):
    """A real Celery worker on the host's queue: the API enqueues, the worker reads libvirt."""
    settings.CONSOLE_STALE_SECONDS = 1
    with start_worker(app, queues=[host_queue("h01")], pool="solo", perform_ping_check=False):
        created = create(cloud.client, cloud.image).json()
        instance_id = created["instance"]["id"]
        deadline = time.monotonic() + 30
        while console_capture(instance_id).captured_at is None:  # after the build, no GET
            assert time.monotonic() < deadline, "no console pushed after the build"
            time.sleep(0.2)
        assert (
            cloud.client.get(f"/api/v1/operations/{created['operation']['id']}").json()["status"]
            == "succeeded"
        )

        guest_prints(console_dir, instance_id, "ANDROMEDE-READY\n")
        old = console_capture(instance_id).captured_at
        cache.set(
            console_cache_key(instance_id),
            {"output": "", "captured_at": (timezone.now() - timedelta(minutes=5)).isoformat()},
        )
        started = time.monotonic()
        first = cloud.client.get(f"/api/v1/instances/{instance_id}/console").json()
        assert time.monotonic() - started < 2  # answered at once, from the stale capture
        assert first["output"] == ""
        assert first["age_seconds"] >= 300
        body = first
        while "ANDROMEDE-READY" not in body["output"]:
            assert time.monotonic() < deadline + 30, f"the worker never refreshed: {body}"
            time.sleep(0.3)
            body = cloud.client.get(f"/api/v1/instances/{instance_id}/console").json()
        assert body["age_seconds"] < 30
        assert old is not None

        # the beat's round: every reachable host's worker pushes its consoles, no read needed
        guest_prints(console_dir, instance_id, "ANDROMEDE-BEAT\n")
        assert console_refresh_all() == ["h01"]
        while "ANDROMEDE-BEAT" not in console_capture(instance_id).output:
            assert time.monotonic() < deadline + 60, "the beat's push never came"
            time.sleep(0.3)
