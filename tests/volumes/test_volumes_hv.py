"""Volumes on the directory backend of a real libvirtd (the hypervisor lane), through the API
only, with a real Celery worker on the host's queue: an empty volume and one made from the
test image (a standalone copy, grown to the size asked for), an extend the file shows, and
a delete whose erasure is proven on the file's own blocks (issue 11 "Done means": a hard link
kept across the delete holds no marker afterwards, and the blocks that held it were
overwritten in place before the space was freed). No guest boots here: none is needed to
prove any of it. Last, the reconciler reports a file in the volumes pool nobody accounts
for. A test of its own exports a volume made from the image (issue 11 item 9): the
download's SHA-256 is the one announced, and `qemu-img compare` finds the image in it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command

from hosts.hypervisors import hypervisor_for
from hosts.models import Host, OrphanReport
from iaas.celery import app, host_queue
from images.models import Image
from tests import factories
from tests.support import erasure, hypervisor_lab
from tests.support.local_host import onboarded_local_host
from volumes.services.reconciler import check_volume_pool
from volumes.worker.handlers import ERASED_BY_WIPE

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
HOST = "vol-local"
GIB = 1024**3


@pytest.fixture
def real_host(settings: Any) -> Iterator[Host]:
    with onboarded_local_host(settings, HOST, "fr-vol-1") as host:
        yield host


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def qemu_img_info(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(path)],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    info: dict[str, Any] = json.loads(out)
    return info


def test_volumes_are_made_grown_and_provably_erased_on_a_real_host(
    real_host: Host, make_tenant: Any, make_caller: Any
) -> None:
    image_path = hypervisor_lab.ensure_test_image()
    call_command(
        "image_import", "andromede-test", str(image_path), "--disk-format", "qcow2", "--public"
    )
    image = Image.objects.get(name="andromede-test")
    assert image.status == "active"
    factories.volume_type("standard", max_size_gb=10)
    tenant = make_tenant("acme")
    client = make_caller(tenant, "member").client()
    auditor = make_caller(tenant, "admin").client()  # a tenant's audit log: its admins
    pool_dir = Path(real_host.storage_root) / "volumes"

    def settled(answer: Any, expected: str = "succeeded") -> dict[str, Any]:
        assert answer.status_code == 202, answer.content
        url = f"/api/v1/operations/{answer.json()['operation']['id']}"
        done = wait_for(
            lambda: (body := client.get(url).json())["status"] in ("succeeded", "failed") and body,
            120,
            "the operation to finish",
        )
        assert done["status"] == expected, done
        return dict(answer.json())

    def shown(volume_id: str) -> dict[str, Any]:
        return dict(client.get(f"/api/v1/volumes/{volume_id}").json())

    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        # An empty volume: a qcow2 file of the size asked for, alone.
        empty = settled(
            client.post("/api/v1/volumes", {"name": "scratch", "size_gb": 1}, format="json")
        )
        empty_id = empty["volume"]["id"]
        assert shown(empty_id)["status"] == "available"
        empty_file = pool_dir / f"volume-{empty_id}"
        info = qemu_img_info(empty_file)
        assert (info["format"], info["virtual-size"]) == ("qcow2", 1 * GIB)
        assert "backing-filename" not in info

        # From the image: a standalone copy (no backing file: it outlives the image and its
        # cache) holding the image's content, grown to the 2 GiB asked for.
        body = {"name": "boot", "size_gb": 2, "image": str(image.pk)}
        copied = settled(client.post("/api/v1/volumes", body, format="json"))
        copied_id = copied["volume"]["id"]
        copy_file = pool_dir / f"volume-{copied_id}"
        info = qemu_img_info(copy_file)
        assert (info["format"], info["virtual-size"]) == ("qcow2", 2 * GIB), info
        assert not {"backing-filename", "full-backing-filename"} & set(info)
        same = subprocess.run(
            ["qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", str(image_path),
             str(copy_file)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert same.returncode == 0, same.stdout + same.stderr  # the image's bytes, then zeros

        # Extend: the file's virtual size grows; the API says so.
        extend = client.post(f"/api/v1/volumes/{empty_id}/extend", {"size_gb": 3}, format="json")
        settled(extend)
        assert (shown(empty_id)["status"], shown(empty_id)["size_gb"]) == ("available", 3)
        assert qemu_img_info(empty_file)["virtual-size"] == 3 * GIB

        # Erasure: a marker written where a guest would have written it, a second name for
        # the file kept across the delete, the blocks that hold the marker noted.
        erasure.write_marker(copy_file, mib=2)
        link = pool_dir.parent / f"kept-{copied_id}"
        os.link(copy_file, link)
        held = erasure.marker_blocks(link)
        assert len(held) == 2 * 256
        settled(client.delete(f"/api/v1/volumes/{copied_id}"))
        assert client.get(f"/api/v1/volumes/{copied_id}").status_code == 404
        assert not copy_file.exists()
        assert not erasure.holds_marker(link)
        assert held <= erasure.physical_blocks(link)  # overwritten in place, not freed
        erase = {"action": "volume.erase"}
        events = auditor.get("/api/v1/audit-events", erase).json()["results"]
        assert [e["details"]["erased_by"] for e in events] == [ERASED_BY_WIPE]

        settled(client.delete(f"/api/v1/volumes/{empty_id}"))
        assert not empty_file.exists()
        assert sorted(p.name for p in pool_dir.iterdir()) == []

    # Storage nobody accounts for: a deleted volume's file put back behind the control
    # plane's back (a restore) is reported by the reconciler, and left where it is.
    os.link(link, copy_file)
    hv = hypervisor_for(real_host)
    assert check_volume_pool(hv, real_host) == 1
    report = OrphanReport.objects.get(host=real_host)
    assert (report.details["volume"], report.details["reason"]) == (
        copy_file.name, "its volume was deleted",
    )  # fmt: skip
    assert copy_file.exists()


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
        # A snapshot of it goes out the same way, with its own file.
        snap_body = {"volume": volume["id"], "name": "boot-snap"}
        snapshot = settled(client.post("/api/v1/volume-snapshots", snap_body, format="json"))
        snapshot_id = snapshot["volume_snapshot"]["id"]
        snapshot_export = settled(client.post(f"/api/v1/volume-snapshots/{snapshot_id}/export"))

    export = client.get(f"/api/v1/exports/{accepted['export']['id']}").json()
    assert (export["status"], export["zone"]) == ("available", "fr-vol-1")
    assert client.get(f"/api/v1/volumes/{volume['id']}").json()["status"] == "available"
    downloaded = download_export(client, export["id"], tmp_path / "boot.qcow2")
    same = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(image_path), str(downloaded)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert same.returncode == 0, same.stdout + same.stderr  # the image's content, then zeros
    assert export_seconds < 120  # streamed, not stuck: a few seconds for the test image
    snapshot_file = download_export(
        client, snapshot_export["export"]["id"], tmp_path / "snap.qcow2"
    )
    same = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(image_path), str(snapshot_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert same.returncode == 0, same.stdout + same.stderr

    stored = Path(settings.IMAGE_STORE_DIR) / "exports" / export["id"]
    assert stored.exists()
    assert client.delete(f"/api/v1/exports/{export['id']}").status_code == 200
    assert not stored.exists()


def download_export(client: Any, export_id: str, path: Path) -> Path:
    """Download an available export to `path`, checking that the announced SHA-256 and size
    are the downloaded file's and the export's; `path`."""
    export = client.get(f"/api/v1/exports/{export_id}").json()
    answer = client.get(f"/api/v1/exports/{export_id}/file")
    assert answer.status_code == 200, answer.content
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for chunk in answer.streaming_content:
            digest.update(chunk)
            out.write(chunk)
    assert answer["X-Content-SHA256"] == digest.hexdigest() == export["checksum_sha256"]
    assert path.stat().st_size == export["size_bytes"] == int(answer["Content-Length"])
    return path
