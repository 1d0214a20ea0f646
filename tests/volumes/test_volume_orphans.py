"""Storage nobody accounts for in a host's volumes pool (issue 11 item 6), on libvirt's fake
hypervisor: reported once each (OrphanReport, `host.orphan` audit event), never deleted; the
files of live volumes are not reported."""

from __future__ import annotations

import uuid

import pytest

from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import OrphanReport
from hypervisor.base import StorageVolumeSpec
from iaas.models import AuditEvent
from operations.worker import run_operation
from tests import factories
from tests.factories import SYSTEM
from volumes.models import Volume, VolumeSnapshot
from volumes.services.reconciler import NOT_OURS, check_volume_pool, reconcile_volume_pools
from volumes.services.snapshots import volume_snapshot_create, volume_snapshot_delete
from volumes.services.volumes import volume_delete

pytestmark = pytest.mark.django_db
POOL = naming.storage_pool("h01", "volumes")


def made(cloud, name: str) -> Volume:
    volume, operation = factories.volume(
        cloud.tenant, volume_type=factories.volume_type(f"t-{name}"), name=name
    )
    assert run_operation(str(operation.pk)) == "succeeded"
    return Volume.objects.get(pk=volume.pk)


def reported() -> dict[str, str]:
    return {r.details["volume"]: r.details["reason"] for r in OrphanReport.objects.all()}


def test_files_no_live_volume_accounts_for_are_reported_once_and_kept(cloud):
    hv = hypervisor_for(cloud.host)
    live = made(cloud, "live")
    gone = made(cloud, "gone")
    assert run_operation(str(volume_delete(actor=SYSTEM, volume=gone).pk)) == "succeeded"
    stranger = naming.volume(uuid.uuid4())
    # Behind the control plane's back: the deleted volume's file back (a restore, an erase
    # that failed half-way), a volume-<id> nobody knows, a file Andromède never names.
    for name in (naming.volume(gone.pk), stranger, "backup.img"):
        hv.create_storage_volume(StorageVolumeSpec(POOL, name, 1 << 20, format="raw"))

    assert check_volume_pool(hv, cloud.host) == 3
    assert reported() == {
        naming.volume(gone.pk): "its volume was deleted",
        stranger: "no volume has this id",
        "backup.img": NOT_OURS,
    }  # the live volume's file is not among them
    report = OrphanReport.objects.get(name=f"{POOL}/{naming.volume(gone.pk)}")
    assert (report.kind, report.host, report.details["tenant_id"]) == (
        "volume", cloud.host, str(cloud.tenant.pk),
    )  # fmt: skip
    assert AuditEvent.objects.filter(action="host.orphan").count() == 3

    assert reconcile_volume_pools() == {"h01": 0}  # seen again: not reported twice
    assert AuditEvent.objects.filter(action="host.orphan").count() == 3
    left = {info.name for info in hv.list_storage_volumes(POOL)}
    assert left == {naming.volume(live.pk), naming.volume(gone.pk), stranger, "backup.img"}


def test_snapshot_files_are_accounted_for_like_volumes(cloud):
    hv = hypervisor_for(cloud.host)
    volume = made(cloud, "src")
    kept, operation = volume_snapshot_create(actor=SYSTEM, volume=volume, name="kept")
    assert run_operation(str(operation.pk)) == "succeeded"
    gone, operation = volume_snapshot_create(actor=SYSTEM, volume=volume, name="gone")
    assert run_operation(str(operation.pk)) == "succeeded"
    gone = VolumeSnapshot.objects.get(pk=gone.pk)
    assert run_operation(str(volume_snapshot_delete(actor=SYSTEM, snapshot=gone).pk)) == (
        "succeeded"
    )
    stranger = naming.volume_snapshot(uuid.uuid4())
    for name in (naming.volume_snapshot(gone.pk), stranger):
        hv.create_storage_volume(StorageVolumeSpec(POOL, name, 1 << 20, format="raw"))

    assert check_volume_pool(hv, cloud.host) == 2
    assert reported() == {
        naming.volume_snapshot(gone.pk): "its snapshot was deleted",
        stranger: "no snapshot has this id",
    }  # neither the live volume's file nor the live snapshot's
    assert naming.volume_snapshot(kept.pk) in {i.name for i in hv.list_storage_volumes(POOL)}


def test_a_host_without_a_volumes_pool_has_nothing_to_report(cloud):
    other = factories.host("h02", cloud.zone)
    assert check_volume_pool(hypervisor_for(other), other) == 0
    assert not OrphanReport.objects.exists()
