"""Volume snapshot exports on libvirt's fake hypervisor (test:///default): POST
/volume-snapshots/{id}/export answers 202 with an Export and its operation, the worker
streams the snapshot's file into an image store of its zone, the tenant downloads it with
its SHA-256 (issue 11 item 9: images, snapshots and volumes can all be taken away). The
snapshot stays `available` throughout, and cannot be deleted while its copy is read.

What a real snapshot's bytes look like in the download is the hypervisor lane's concern for
volumes (tests/volumes/test_volumes_hv.py); a snapshot goes through the same copy
(volumes.worker.export._copy_file), with its own file name."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from hosts import naming
from hosts.hypervisors import hypervisor_for
from iaas.models import AuditEvent
from images.models import Export
from images.services.stores import image_store_create
from operations.models import Operation
from operations.worker import run_operation
from tests import factories
from tests.factories import SYSTEM
from tests.support.api_checks import business_rows
from volumes.models import VolumeSnapshot
from volumes.services.snapshots import volume_snapshot_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def scloud(cloud: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """The `cloud` with an image store in the host's zone and an available snapshot of an
    available 2 GiB volume."""
    directory = tmp_path / "par1-store"
    directory.mkdir()
    image_store_create(actor=SYSTEM, name="par1", zone=cloud.zone, path=str(directory))
    cloud.store_dir = directory
    volume_type = factories.volume_type("standard", max_size_gb=100)
    volume = factories.available_volume(cloud.tenant, volume_type=volume_type, size_gb=2)
    snapshot, operation = volume_snapshot_create(actor=SYSTEM, volume=volume, name="nightly")
    assert run_operation(str(operation.pk)) == "succeeded"
    snapshot.refresh_from_db()
    assert snapshot.status == "available"
    cloud.snapshot = snapshot
    return cloud


def export(client: Any, snapshot: VolumeSnapshot) -> Any:
    return client.post(f"/api/v1/volume-snapshots/{snapshot.pk}/export")


def test_a_snapshot_export_downloads_with_its_sha256_and_the_snapshot_stays_available(scloud):
    snapshot = scloud.snapshot
    answer = export(scloud.client, snapshot)
    assert answer.status_code == 202, answer.content
    accepted, operation = answer.json()["export"], answer.json()["operation"]
    assert (accepted["status"], accepted["source_kind"], accepted["source_id"]) == (
        "creating", "volume_snapshot", str(snapshot.pk),
    )  # fmt: skip
    assert (accepted["zone"], accepted["name"]) == ("fr-par-1", "nightly.qcow2")
    shown = scloud.client.get(f"/api/v1/volume-snapshots/{snapshot.pk}").json()
    assert shown["status"] == "available"  # a snapshot never changes: it stays usable

    assert run_operation(operation["id"]) == "succeeded"

    made = scloud.client.get(f"/api/v1/exports/{accepted['id']}").json()
    assert made["status"] == "available"
    download = scloud.client.get(f"/api/v1/exports/{accepted['id']}/file")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    digest = hashlib.sha256(body).hexdigest()
    assert download["X-Content-SHA256"] == digest == made["checksum_sha256"]
    assert body.startswith(b"QFI\xfb")  # a qcow2 (the fake's: an empty disk of 2 GiB)
    after = scloud.client.get(f"/api/v1/volume-snapshots/{snapshot.pk}").json()
    assert (after["status"], after["fault"]) == ("available", "")
    events = AuditEvent.objects.filter(tenant_id=scloud.tenant.pk)
    assert events.filter(action="volume_snapshot.export", outcome="success").count() == 1
    history = scloud.client.get(f"/api/v1/volume-snapshots/{snapshot.pk}/operations").json()
    assert sorted(h["action"] for h in history) == [
        "volume_snapshot.create", "volume_snapshot.export",
    ]  # fmt: skip


def test_a_snapshot_being_exported_cannot_be_deleted_and_nothing_changes(scloud):
    snapshot = scloud.snapshot
    answer = export(scloud.client, snapshot)
    assert answer.status_code == 202, answer.content
    before = business_rows()
    refused = scloud.client.delete(f"/api/v1/volume-snapshots/{snapshot.pk}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "snapshot_in_use")
    assert business_rows() == before
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    # Once the copy is made, the snapshot may go (its export is a copy of its own).
    deleted = scloud.client.delete(f"/api/v1/volume-snapshots/{snapshot.pk}")
    assert deleted.status_code == 202, deleted.content
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    assert Export.objects.get().status == "available"


def test_a_snapshot_not_available_is_not_exported(scloud):
    VolumeSnapshot.objects.filter(pk=scloud.snapshot.pk).update(status="error")
    operations = Operation.objects.count()
    answer = export(scloud.client, scloud.snapshot)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "wrong_state")
    assert answer.json()["error"]["details"] == {"status": "error"}
    assert not Export.objects.exists()
    assert Operation.objects.count() == operations


def test_another_tenants_snapshot_is_a_404_and_nothing_changes(scloud, make_tenant, make_caller):
    intruder = make_caller(make_tenant("other"), "admin").client()
    before = business_rows()
    answer = export(intruder, scloud.snapshot)
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")
    assert business_rows() == before


def test_a_reader_cannot_export_a_snapshot(scloud, make_caller):
    reader = make_caller(scloud.tenant, "reader").client()
    before = business_rows()
    assert export(reader, scloud.snapshot).status_code == 403
    assert business_rows() == before


def test_a_failed_snapshot_export_leaves_the_snapshot_available_and_deletable(scloud):
    snapshot = scloud.snapshot
    answer = export(scloud.client, snapshot)
    # The snapshot's file vanished behind the control plane's back (no mock: it is gone).
    pool = naming.storage_pool(scloud.host.name, "volumes")
    hypervisor_for(scloud.host).delete_storage_volume(pool, naming.volume_snapshot(snapshot.pk))

    assert run_operation(answer.json()["operation"]["id"]) == "failed"

    made = scloud.client.get(f"/api/v1/exports/{answer.json()['export']['id']}").json()
    assert (made["status"], made["fault"].startswith("The export failed:")) == ("error", True)
    shown = scloud.client.get(f"/api/v1/volume-snapshots/{snapshot.pk}").json()
    assert (shown["status"], shown["fault"].startswith("The export failed:")) == (
        "available", True,
    )  # fmt: skip
    assert list((scloud.store_dir / "exports").iterdir()) == []  # no partial file left
    # No export is being made any more: the snapshot may be deleted.
    assert scloud.client.delete(f"/api/v1/volume-snapshots/{snapshot.pk}").status_code == 202


def test_an_abandoned_snapshot_export_fails_its_export_and_frees_the_snapshot(scloud, settings):
    from operations.services.deadlines import fail_overdue_operations

    answer = export(scloud.client, scloud.snapshot)
    Operation.objects.filter(pk=answer.json()["operation"]["id"]).update(
        created_at=timezone.now() - settings.OPERATION_DEADLINE - timedelta(hours=1)
    )
    assert fail_overdue_operations() == [answer.json()["operation"]["id"]]
    assert Export.objects.get().status == "error"
    assert VolumeSnapshot.objects.get(pk=scloud.snapshot.pk).status == "available"
    assert scloud.client.delete(f"/api/v1/volume-snapshots/{scloud.snapshot.pk}").status_code == 202
