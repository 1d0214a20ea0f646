"""Volume exports on libvirt's fake hypervisor (test:///default): POST /volumes/{id}/export
answers 202 with an Export and its operation, the worker streams the volume's file into the
`exports/` folder of an image store in the volume's zone, hashing it on the way, and the
tenant downloads it (GET /exports/{id}/file) until it is erased: by DELETE or on expiry
(issue 11 item 9).

What the export holds: libvirt's fake keeps no volume data and cannot download
(download_storage_volume raises Unsupported there: tests/hypervisor/test_hypervisor_contract.py),
so on it the worker writes what the fake holds, an empty qcow2 of the volume's size, and the
tests below check that file. That a real volume's bytes come out is the hypervisor lane's
(tests/volumes/test_volumes_hv.py: the download equals the image the volume was made
from, by `qemu-img compare`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from hosts import naming
from hosts.hypervisors import hypervisor_for
from iaas.models import AuditEvent
from images.files import ERASED_BY_OVERWRITE
from images.models import Export, ImageStore
from images.services.exports import export_file_path, exports_expire
from images.services.stores import image_store_create
from operations.models import Operation
from operations.worker import run_operation
from tests import factories
from tests.factories import SYSTEM
from volumes.models import Volume
from volumes.worker.export import store_copy

GIB = 1024**3
POOL = naming.storage_pool("h01", "volumes")

pytestmark = pytest.mark.django_db


@pytest.fixture
def ecloud(cloud: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """The `cloud` with the volume type `standard` and an image store in the host's zone
    (fr-par-1), which keeps that zone's exports."""
    cloud.volume_type = factories.volume_type("standard", max_size_gb=100)
    directory = tmp_path / "par1-store"
    directory.mkdir()
    cloud.store = image_store_create(
        actor=SYSTEM, name="par1", zone=cloud.zone, path=str(directory)
    )
    return cloud


def available_volume(cloud: SimpleNamespace, name: str = "data", size_gb: int = 2) -> Volume:
    return factories.available_volume(
        cloud.tenant, volume_type=cloud.volume_type, name=name, size_gb=size_gb
    )


def export(client: Any, volume: Volume) -> Any:
    return client.post(f"/api/v1/volumes/{volume.pk}/export")


def exported(cloud: SimpleNamespace, volume: Volume) -> dict[str, Any]:
    """An export made through the API and filled by the worker; its JSON."""
    answer = export(cloud.client, volume)
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    return cloud.client.get(f"/api/v1/exports/{answer.json()['export']['id']}").json()


def download(client: Any, export_id: str) -> tuple[Any, bytes]:
    answer = client.get(f"/api/v1/exports/{export_id}/file")
    body = b"".join(answer.streaming_content) if answer.status_code == 200 else b""
    return answer, body


def qemu_img_info(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", "-f", "qcow2", str(path)],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def nothing_exported(volume: Volume, operations_before: int) -> None:
    assert not Export.objects.exists()
    assert Operation.objects.count() == operations_before
    volume.refresh_from_db()
    assert volume.status == "available"


# ---- export, download --------------------------------------------------------------------


def test_an_export_is_made_by_the_worker_then_downloads_with_its_sha256(ecloud, tmp_path):
    volume = available_volume(ecloud)
    answer = export(ecloud.client, volume)
    assert answer.status_code == 202, answer.content
    accepted, operation = answer.json()["export"], answer.json()["operation"]
    assert (accepted["status"], accepted["source_kind"], accepted["source_id"]) == (
        "creating", "volume", str(volume.pk),
    )  # fmt: skip
    assert (accepted["zone"], accepted["jurisdiction"], accepted["name"]) == (
        "fr-par-1", "FR", "data.qcow2",
    )  # fmt: skip
    assert ecloud.client.get(f"/api/v1/volumes/{volume.pk}").json()["status"] == "exporting"
    attach = ecloud.client.post(f"/api/v1/volumes/{volume.pk}/export")  # busy: one at a time
    assert (attach.status_code, attach.json()["error"]["code"]) == (409, "wrong_state")
    pending, _ = download(ecloud.client, accepted["id"])
    assert (pending.status_code, pending.json()["error"]["code"]) == (409, "export_not_available")

    assert run_operation(operation["id"]) == "succeeded"

    assert ecloud.client.get(f"/api/v1/volumes/{volume.pk}").json()["status"] == "available"
    shown = ecloud.client.get(f"/api/v1/exports/{accepted['id']}").json()
    assert shown["status"] == "available"
    expires = datetime.fromisoformat(shown["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - timezone.now() <= timedelta(hours=24)
    answer, body = download(ecloud.client, accepted["id"])
    assert answer.status_code == 200
    digest = hashlib.sha256(body).hexdigest()
    assert answer["X-Content-SHA256"] == digest == shown["checksum_sha256"]
    assert int(answer["Content-Length"]) == len(body) == shown["size_bytes"]
    assert answer["Content-Disposition"] == 'attachment; filename="data.qcow2"'
    # What the fake holds: an empty disk of the volume's size, as a standalone qcow2.
    saved = tmp_path / "downloaded.qcow2"
    saved.write_bytes(body)
    info = qemu_img_info(saved)
    assert (info["format"], info["virtual-size"]) == ("qcow2", 2 * GIB)
    assert "backing-filename" not in info
    # The file lies in the exports folder of the store in the volume's zone.
    stored = export_file_path(Export.objects.get(pk=accepted["id"]))
    assert stored.parent == Path(ecloud.store.path) / "exports"
    assert stored.read_bytes() == body
    events = AuditEvent.objects.filter(tenant_id=ecloud.tenant.pk)
    assert events.filter(action="volume.export", outcome="success").count() == 1
    assert events.get(action="export.available").details["checksum_sha256"] == digest
    history = ecloud.client.get(f"/api/v1/volumes/{volume.pk}/operations").json()
    assert sorted(h["action"] for h in history) == ["volume.create", "volume.export"]
    assert [s["name"] for s in Operation.objects.get(pk=operation["id"]).steps] == ["store_copy"]
    listed = ecloud.client.get("/api/v1/exports").json()["results"]
    assert [e["id"] for e in listed] == [accepted["id"]]
    assert run_operation(operation["id"]) == "skipped"  # finished: a redelivery does nothing


def test_the_copy_step_runs_twice_without_a_second_file(ecloud):
    volume = available_volume(ecloud)
    made = exported(ecloud, volume)
    row = Export.objects.select_related("store__zone", "tenant").get(pk=made["id"])
    store_copy(hypervisor_for(ecloud.host), volume, row)  # a worker that died after the step
    row.refresh_from_db()
    assert row.checksum_sha256 == made["checksum_sha256"]
    assert sorted(p.name for p in export_file_path(row).parent.iterdir()) == [made["id"]]


def test_a_reader_may_list_and_download_but_not_export_or_delete(ecloud, make_caller):
    volume = available_volume(ecloud)
    made = exported(ecloud, volume)
    reader = make_caller(ecloud.tenant, "reader").client()
    assert download(reader, made["id"])[0].status_code == 200
    assert export(reader, volume).status_code == 403
    assert reader.delete(f"/api/v1/exports/{made['id']}").status_code == 403
    assert Export.objects.get(pk=made["id"]).status == "available"


# ---- refusals --------------------------------------------------------------------------------


def test_another_tenants_volume_and_exports_are_404s_and_nothing_changes(
    ecloud, make_tenant, make_caller
):
    volume = available_volume(ecloud)
    made = exported(ecloud, volume)
    intruder = make_caller(make_tenant("other"), "admin").client()
    operations = Operation.objects.count()
    calls = [
        intruder.post(f"/api/v1/volumes/{volume.pk}/export"),
        intruder.get(f"/api/v1/exports/{made['id']}"),
        intruder.get(f"/api/v1/exports/{made['id']}/file"),
        intruder.delete(f"/api/v1/exports/{made['id']}"),
    ]
    for answer in calls:
        assert answer.status_code == 404, answer.content
        assert answer.json()["error"]["code"] == "not_found"
    assert intruder.get("/api/v1/exports").json()["results"] == []
    assert Operation.objects.count() == operations
    assert Export.objects.get().status == "available"
    assert export_file_path(Export.objects.get()).exists()


def test_only_an_available_volume_is_exported(ecloud):
    """Attached (in-use) is refused too: a copy read while a guest writes would be torn."""
    creating, _operation = factories.volume(
        ecloud.tenant, volume_type=ecloud.volume_type, name="new"
    )
    attached = available_volume(ecloud, name="attached")
    Volume.objects.filter(pk=attached.pk).update(status="in-use")  # as an attach leaves it
    operations = Operation.objects.count()
    for volume, status in ((creating, "creating"), (attached, "in-use")):
        answer = export(ecloud.client, volume)
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "wrong_state")
        assert answer.json()["error"]["details"] == {"status": status}
        assert answer.json()["error"]["message"].endswith("only when it is available.")
        assert Volume.objects.get(pk=volume.pk).status == status
    assert not Export.objects.exists()
    assert Operation.objects.count() == operations


def test_an_encrypted_volume_is_not_exported_yet_and_nothing_changes(ecloud):
    """Its file is LUKS ciphertext under a key the tenant never holds: refused (400), rather
    than a download nobody can read."""
    secure = factories.volume_type("secure", max_size_gb=100, encrypted=True)
    volume = factories.available_volume(ecloud.tenant, volume_type=secure, name="vault")
    operations, since = Operation.objects.count(), AuditEvent.objects.count()
    answer = export(ecloud.client, volume)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "not_supported_yet")
    assert answer.json()["error"]["details"] == {"volume_type": "secure"}
    nothing_exported(volume, operations)
    assert [e.outcome for e in AuditEvent.objects.order_by("id")[since:]] == ["refused"]


def test_live_exports_are_bounded_by_exports_per_tenant(ecloud, settings):
    settings.EXPORTS_PER_TENANT = 2
    first_volume, second_volume = available_volume(ecloud, "one"), available_volume(ecloud, "two")
    third_volume = available_volume(ecloud, "three")
    first = exported(ecloud, first_volume)
    second = export(ecloud.client, second_volume)  # one being made counts too
    assert second.status_code == 202
    operations = Operation.objects.count()

    refused = export(ecloud.client, third_volume)

    error = refused.json()["error"]
    assert (refused.status_code, error["code"]) == (403, "quota_exceeded")
    assert (error["details"]["limit"], error["details"]["usage"]) == (2, 2)
    assert Export.objects.count() == 2
    assert Operation.objects.count() == operations
    assert Volume.objects.get(pk=third_volume.pk).status == "available"
    assert AuditEvent.objects.filter(action="volume.export", outcome="refused").count() == 1
    assert run_operation(second.json()["operation"]["id"]) == "succeeded"
    assert export(ecloud.client, third_volume).status_code == 403  # available ones count
    assert ecloud.client.delete(f"/api/v1/exports/{first['id']}").status_code == 200
    assert export(ecloud.client, third_volume).status_code == 202  # a deleted one frees its slot


def test_a_zone_without_an_image_store_keeps_no_export(ecloud):
    volume = available_volume(ecloud)
    ImageStore.objects.filter(pk=ecloud.store.pk).update(enabled=False)
    operations = Operation.objects.count()
    answer = export(ecloud.client, volume)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "no_export_store")
    nothing_exported(volume, operations)


def test_a_residency_that_no_longer_allows_the_zone_is_refused(ecloud):
    volume = available_volume(ecloud)
    ecloud.tenant.residency = ["DE"]
    ecloud.tenant.save(update_fields=["residency"])
    operations = Operation.objects.count()
    answer = export(ecloud.client, volume)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "residency_unsatisfiable")
    nothing_exported(volume, operations)
    refusal = AuditEvent.objects.get(action="volume.export", outcome="refused")
    assert refusal.details["code"] == "residency_unsatisfiable"


# ---- failures ----------------------------------------------------------------------------------


def test_a_copy_that_fails_leaves_the_export_in_error_and_the_volume_available(ecloud):
    volume = available_volume(ecloud)
    answer = export(ecloud.client, volume)
    # The volume's storage vanished behind the control plane's back (no mock: it is gone).
    hypervisor_for(ecloud.host).delete_storage_volume(POOL, naming.volume(volume.pk))

    assert run_operation(answer.json()["operation"]["id"]) == "failed"

    shown = ecloud.client.get(f"/api/v1/exports/{answer.json()['export']['id']}").json()
    assert shown["status"] == "error"
    assert shown["fault"].startswith("The export failed:")
    volume_now = ecloud.client.get(f"/api/v1/volumes/{volume.pk}").json()
    assert volume_now["status"] == "available"
    assert volume_now["fault"].startswith("The export failed:")
    exports_dir = Path(ecloud.store.path) / "exports"
    assert list(exports_dir.iterdir()) == []  # no partial file left
    # An export in error is deleted by its owner (nothing to erase).
    deleted = ecloud.client.delete(f"/api/v1/exports/{shown['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "deleted"


def test_a_large_export_gets_a_deadline_that_grows_with_its_size(ecloud, settings):
    """Past the default deadline plus 10 s per GiB (COPY_SECONDS_PER_GIB), a 2 GiB export is
    stuck (after 1820 s) while a 90 GiB one is left alone until 2700 s."""
    from operations.services.deadlines import fail_overdue_operations

    small, large = (
        available_volume(ecloud, name="small"),
        available_volume(ecloud, name="large", size_gb=90),
    )
    ids = {v.pk: export(ecloud.client, v).json()["operation"]["id"] for v in (small, large)}
    default = settings.OPERATION_DEADLINE
    Operation.objects.filter(status="queued").update(
        created_at=timezone.now() - default - timedelta(seconds=2 * 10 + 1)
    )
    assert fail_overdue_operations() == [ids[small.pk]]
    assert Volume.objects.get(pk=large.pk).status == "exporting"
    Operation.objects.filter(pk=ids[large.pk]).update(
        created_at=timezone.now() - default - timedelta(seconds=90 * 10 + 1)
    )
    assert fail_overdue_operations() == [ids[large.pk]]
    assert Volume.objects.get(pk=large.pk).status == "available"
    assert "Not finished within 2700 s" in Operation.objects.get(pk=ids[large.pk]).error


def test_an_abandoned_export_releases_its_volume(ecloud, settings):
    from operations.services.deadlines import fail_overdue_operations

    volume = available_volume(ecloud)
    answer = export(ecloud.client, volume)
    Operation.objects.filter(status="queued").update(  # its deadline: 1800 s + 10 s a GiB
        created_at=timezone.now() - settings.OPERATION_DEADLINE - timedelta(seconds=21)
    )
    assert fail_overdue_operations() == [answer.json()["operation"]["id"]]
    assert Volume.objects.get(pk=volume.pk).status == "available"
    made = Export.objects.get()
    assert (made.status, made.fault.startswith("The export failed: Not finished")) == (
        "error", True,
    )  # fmt: skip


# ---- erasure --------------------------------------------------------------------------------


def test_delete_overwrites_the_file_before_unlinking_it(ecloud, tmp_path):
    volume = available_volume(ecloud)
    made = exported(ecloud, volume)
    stored = export_file_path(Export.objects.get(pk=made["id"]))
    witness = tmp_path / "witness"
    os.link(stored, witness)  # a hard link keeps the inode: what the unlink freed is visible
    assert any(witness.read_bytes())

    answer = ecloud.client.delete(f"/api/v1/exports/{made['id']}")

    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["erased_by"]) == (
        "deleted", ERASED_BY_OVERWRITE,
    )  # fmt: skip
    assert not stored.exists()
    assert witness.stat().st_size == made["size_bytes"]
    assert not any(witness.read_bytes())  # zeros: overwritten before it was unlinked
    assert ecloud.client.get(f"/api/v1/exports/{made['id']}").status_code == 404
    erase = AuditEvent.objects.get(action="export.erase")
    assert (erase.tenant_id, erase.details["erased_by"]) == (ecloud.tenant.pk, ERASED_BY_OVERWRITE)
    assert ecloud.client.delete(f"/api/v1/exports/{made['id']}").status_code == 404


def test_an_export_being_made_cannot_be_deleted(ecloud):
    volume = available_volume(ecloud)
    answer = export(ecloud.client, volume)
    refused = ecloud.client.delete(f"/api/v1/exports/{answer.json()['export']['id']}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "wrong_state")
    assert Export.objects.get().status == "creating"


def test_expired_exports_are_erased_and_others_kept(ecloud, tmp_path):
    volume = available_volume(ecloud)
    old = exported(ecloud, volume)
    fresh = exported(ecloud, volume)
    old_file = export_file_path(Export.objects.get(pk=old["id"]))
    witness = tmp_path / "witness"
    os.link(old_file, witness)
    Export.objects.filter(pk=old["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    making = export(ecloud.client, volume).json()["export"]
    Export.objects.filter(pk=making["id"]).update(expires_at=timezone.now() - timedelta(hours=1))

    assert exports_expire() == [old["id"]]

    assert not old_file.exists()
    assert not any(witness.read_bytes())
    assert Export.objects.get(pk=old["id"]).erased_by == ERASED_BY_OVERWRITE
    listed = {e["id"] for e in ecloud.client.get("/api/v1/exports").json()["results"]}
    assert listed == {fresh["id"], making["id"]}  # one being made is left to its operation
    reaped = AuditEvent.objects.get(action="export.erase")
    assert (reaped.actor_label, reaped.details["why"]) == ("export-reaper", "expired")
    assert exports_expire() == []


def test_the_residency_report_lists_exports_with_their_zone(ecloud):
    volume = available_volume(ecloud)
    made = exported(ecloud, volume)
    report = ecloud.client.get("/api/v1/residency").json()
    [france] = [j for j in report["jurisdictions"] if j["jurisdiction"] == "FR"]
    [zone] = [z for z in france["zones"] if z["name"] == "fr-par-1"]
    assert [e["id"] for e in zone["exports"]] == [made["id"]]
    assert [v["id"] for v in zone["volumes"]] == [str(volume.pk)]
