"""A volume exported from a real libvirtd (the hypervisor lane), through the API only, with a
real Celery worker on the host's queue: a volume made from the test image is exported, the
download's SHA-256 is the one the headers and the export announce, and `qemu-img compare`
finds the image's content in it (issue 11 item 9). No guest boots: none is needed."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command

from hosts.models import Host
from iaas.celery import app, host_queue
from images.models import Image
from tests import factories
from tests.support import hypervisor_lab
from tests.support.local_host import onboarded_local_host

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
HOST = "exp-local"


@pytest.fixture
def real_host(settings: Any) -> Iterator[Host]:
    with onboarded_local_host(settings, HOST, "fr-exp-1") as host:
        yield host


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_volume_exported_from_a_real_host_holds_its_image(
    real_host: Host, make_tenant: Any, make_caller: Any, tmp_path: Path, settings: Any
) -> None:
    image_path = hypervisor_lab.ensure_test_image()
    call_command(
        "image_import", "andromede-test", str(image_path), "--disk-format", "qcow2", "--public"
    )
    image = Image.objects.get(name="andromede-test")
    factories.volume_type("standard", max_size_gb=10)
    client = make_caller(make_tenant("acme"), "member").client()

    def settled(answer: Any) -> dict[str, Any]:
        assert answer.status_code == 202, answer.content
        url = f"/api/v1/operations/{answer.json()['operation']['id']}"
        done = wait_for(
            lambda: (body := client.get(url).json())["status"] in ("succeeded", "failed") and body,
            180,
            "the operation to finish",
        )
        assert done["status"] == "succeeded", done
        return dict(answer.json())

    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        body = {"name": "boot", "size_gb": max(image.min_disk_gb, 1), "image": str(image.pk)}
        volume = settled(client.post("/api/v1/volumes", body, format="json"))["volume"]
        started = time.monotonic()
        accepted = settled(client.post(f"/api/v1/volumes/{volume['id']}/export"))
        export_seconds = time.monotonic() - started

    export = client.get(f"/api/v1/exports/{accepted['export']['id']}").json()
    assert (export["status"], export["zone"]) == ("available", "fr-exp-1")
    assert client.get(f"/api/v1/volumes/{volume['id']}").json()["status"] == "available"
    answer = client.get(f"/api/v1/exports/{export['id']}/file")
    assert answer.status_code == 200
    downloaded = tmp_path / "boot.qcow2"
    digest = hashlib.sha256()
    with downloaded.open("wb") as out:
        for chunk in answer.streaming_content:
            digest.update(chunk)
            out.write(chunk)
    assert answer["X-Content-SHA256"] == digest.hexdigest() == export["checksum_sha256"]
    assert downloaded.stat().st_size == export["size_bytes"] == int(answer["Content-Length"])
    same = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(image_path), str(downloaded)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert same.returncode == 0, same.stdout + same.stderr  # the image's content, then zeros
    assert export_seconds < 120  # streamed, not stuck: a few seconds for the test image

    stored = Path(settings.IMAGE_STORE_DIR) / "exports" / export["id"]
    assert stored.exists()
    assert client.delete(f"/api/v1/exports/{export['id']}").status_code == 200
    assert not stored.exists()
