"""Fixtures of the end-to-end fault tests (tests/e2e/test_faults_*.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from compute.models import Flavor
from hosts.models import Host
from hosts.services import onboarding, zones
from iaas.audit import Actor
from iaas.broker import celery_broker_conf
from iaas.celery import app
from images.models import Image
from tests.support import hypervisor_lab
from tests.support.fault_lab import PrivateLibvirtd, PrivateRedis
from tests.support.rabbitmq import PrivateRabbitMQ

Broker = PrivateRedis | PrivateRabbitMQ


def _use_broker(url: str) -> None:
    """The Celery app of this process publishes to the broker at `url`, with that broker's
    settings (quorum queues on RabbitMQ...) as a process started with it would have."""
    # Connections to the previous broker must not be reused (Celery keeps them in pools).
    pool = app._pool  # type: ignore[attr-defined]
    if pool is not None:
        pool.force_close_all()
        app._pool = None  # type: ignore[attr-defined]
    app.__dict__.pop("amqp", None)  # its queues, exchanges and router are of the old settings
    app.conf.update(
        broker_url=url,
        **celery_broker_conf(
            url, longest_operation_seconds=django_settings.LONGEST_OPERATION_SECONDS
        ),
    )


@contextmanager
def _broker_in_use(server: Broker, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    old_url = app.conf.broker_url
    _use_broker(server.url)
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)  # for the worker processes
    try:
        yield server
    finally:
        _use_broker(old_url)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateRedis]:
    """A private redis, and the Celery app of this process pointed at it for the test."""
    directory = Path(tempfile.mkdtemp(prefix="andr-redis-"))  # short: socket paths ≤ 107 bytes
    server = PrivateRedis(directory)
    server.start()
    try:
        with _broker_in_use(server, monkeypatch):
            yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    """One private RabbitMQ node for the session (it takes seconds to start)."""
    server = PrivateRabbitMQ()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def rabbitmq_broker(
    private_rabbitmq: PrivateRabbitMQ, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PrivateRabbitMQ]:
    """The session's RabbitMQ, and the Celery app of this process pointed at it for the
    test; afterwards it runs again (a test may have stopped it) and the queues the test
    used are deleted, so that the next test starts from empty queues as with a new Redis."""
    with _broker_in_use(private_rabbitmq, monkeypatch):
        try:
            yield private_rabbitmq
        finally:
            if private_rabbitmq.process is None:
                private_rabbitmq.start()
            private_rabbitmq.delete_queues(list(app.amqp.queues))


def onboard_private_host(settings: Any, daemon: PrivateLibvirtd, name: str, zone_name: str) -> Host:
    """The private libvirtd onboarded as host `name` (qemu/TCG) in a French zone, the zone
    of the default image store too (where images go to be imported)."""
    settings.IMAGE_STORE_ZONE = zone_name
    system = Actor.system("e2e")
    zone = zones.zone_create(
        actor=system, region="fr-e2e", name=zone_name, site="lab", city="Paris", country="FR",
        jurisdiction="FR",
    )  # fmt: skip
    return onboarding.host_onboard(
        actor=system,
        registration=onboarding.HostRegistration(
            name=name, zone=zone, libvirt_uri=daemon.uri,
            storage_root=str(daemon.storage_root), domain_type="qemu",
        ),
    )  # fmt: skip


@pytest.fixture
def private_libvirtd(settings: Any) -> Iterator[PrivateLibvirtd]:
    """A libvirtd of this test only (see PrivateLibvirtd), stopped and removed afterwards
    with everything it ran; the image store in its directory."""
    from hosts.hypervisors import close_all

    daemon = PrivateLibvirtd("lv")
    try:
        daemon.start()
        settings.IMAGE_STORE_DIR = daemon.directory / "image-store"
        settings.INSTANCE_BOOT_TIMEOUT_SECONDS = 60
        settings.TENANT_NETWORK_SUPERNETS = ["198.51.100.128/25"]
        yield daemon
    finally:
        close_all()  # the process's drivers, before their daemon goes
        daemon.cleanup()


def import_test_image_and_tiny_flavor() -> Image:
    """The project's test image as a public image, and the `tiny` flavor it boots with."""
    call_command(
        "image_import", "andromede-test", str(hypervisor_lab.ensure_test_image()),
        "--disk-format", "qcow2", "--public",
    )  # fmt: skip
    Flavor.objects.create(name="tiny", vcpus=1, memory_mb=128, disk_gb=1)
    return Image.objects.get(name="andromede-test")
