"""Fixtures of the end-to-end fault tests (tests/e2e/test_faults_*.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from compute.models import Flavor
from hosts.models import Host
from hosts.services import onboarding, zones
from iaas.audit import Actor
from iaas.celery import app
from images.models import Image
from tests.support import hypervisor_lab
from tests.support.fault_lab import PrivateLibvirtd, PrivateRedis


def _reset_broker_pools() -> None:
    # Connections to the previous broker must not be reused (Celery keeps them in pools).
    pool = app._pool  # type: ignore[attr-defined]
    if pool is not None:
        pool.force_close_all()
        app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateRedis]:
    """A private redis, and the Celery app of this process pointed at it for the test."""
    directory = Path(tempfile.mkdtemp(prefix="andr-redis-"))  # short: socket paths ≤ 107 bytes
    server = PrivateRedis(directory)
    old_url = app.conf.broker_url
    server.start()
    _reset_broker_pools()
    app.conf.update(broker_url=server.url)
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    try:
        yield server
    finally:
        _reset_broker_pools()
        app.conf.update(broker_url=old_url)
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


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
