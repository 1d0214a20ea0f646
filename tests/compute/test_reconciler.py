"""The reconciler on libvirt's fake hypervisor: power-state drift, missing domains, orphans
(reported, never deleted) and stuck operations."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from compute.models import Instance
from compute.services.reconciler import reconcile_host
from hosts.hypervisors import hypervisor_for
from hosts.models import OrphanReport
from hypervisor.base import DomainSpec
from iaas.errors import InvalidRequest
from iaas.models import AuditEvent
from operations.models import Operation
from operations.services.deadlines import fail_overdue_operations as fail_stuck_operations
from operations.worker import run_operation
from tests import factories
from tests.factories import SYSTEM
from tests.support.instance_api import create

pytestmark = pytest.mark.django_db


def built(cloud) -> Instance:
    created = create(cloud.client, cloud.image).json()
    assert run_operation(created["operation"]["id"]) == "succeeded"
    return Instance.objects.get(pk=created["instance"]["id"])


def test_a_guest_that_powered_itself_off_becomes_stopped(cloud):
    instance = built(cloud)
    hypervisor_for(cloud.host).destroy_domain(str(instance.pk))  # behind our back
    assert reconcile_host(cloud.host)["drift"] == 1
    instance.refresh_from_db()
    assert (instance.status, instance.power_state) == ("stopped", "shutoff")
    event = AuditEvent.objects.get(action="instance.power_drift")
    assert event.tenant_id == cloud.tenant.pk
    assert reconcile_host(cloud.host)["drift"] == 0  # reported once


def test_an_instance_busy_with_a_verb_is_left_alone(cloud):
    instance = built(cloud)
    Instance.objects.filter(pk=instance.pk).update(task_state="stopping")
    hypervisor_for(cloud.host).destroy_domain(str(instance.pk))
    reconcile_host(cloud.host)
    instance.refresh_from_db()
    assert instance.status == "active"


def test_a_missing_domain_puts_the_instance_in_error_with_a_fault(cloud):
    instance = built(cloud)
    hypervisor_for(cloud.host).undefine_domain(str(instance.pk))
    assert reconcile_host(cloud.host)["missing"] == 1
    instance.refresh_from_db()
    assert instance.status == "error"
    assert "missing on its host" in instance.fault


def test_unknown_domains_are_reported_once_and_never_deleted(cloud):
    hv = hypervisor_for(cloud.host)
    stranger = "11111111-2222-3333-4444-555555555555"
    hv.define_domain(
        DomainSpec(name=stranger, title="not ours", tenant_id="x", instance_id=stranger,
                   vcpus=1, memory_mb=64, disks=(), domain_type="test")
    )  # fmt: skip
    first = reconcile_host(cloud.host)
    assert first["orphans"] >= 1
    assert OrphanReport.objects.filter(host=cloud.host, name=stranger).exists()
    assert reconcile_host(cloud.host)["orphans"] == 0
    assert AuditEvent.objects.filter(action="host.orphan", details__name=stranger).count() == 1
    assert stranger in [d.name for d in hv.list_domains()]  # never deleted


def test_operations_stuck_past_their_deadline_fail_and_release_the_instance(cloud):
    created = create(cloud.client, cloud.image).json()
    Operation.objects.filter(pk=created["operation"]["id"]).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    assert fail_stuck_operations() == [created["operation"]["id"]]
    operation = Operation.objects.get(pk=created["operation"]["id"])
    assert operation.status == "failed"
    assert "reconciler" in operation.error
    instance = Instance.objects.get(pk=created["instance"]["id"])
    assert (instance.status, instance.task_state) == ("error", None)
    assert fail_stuck_operations() == []


def _volumes(cloud, role: str) -> set[str]:
    from hosts.naming import storage_pool as pool_name

    return {v.name for v in hypervisor_for(cloud.host).list_storage_volumes(pool_name("h01", role))}


def _make_volume(cloud, role: str, name: str) -> None:
    from hosts.naming import storage_pool as pool_name
    from hypervisor.base import StorageVolumeSpec

    hypervisor_for(cloud.host).create_storage_volume(
        StorageVolumeSpec(pool_name("h01", role), name, 1 << 20)
    )


def test_a_deleted_images_cache_goes_once_no_instance_uses_it(cloud, tiny_qcow2):
    from images.services.images import image_delete

    instance = built(cloud)
    cache = f"image-{cloud.image.pk}"
    kept = factories.public_image(tiny_qcow2, "kept")
    unknown = f"image-{uuid.uuid4()}"  # not in this database: not ours to judge
    for name in (f"image-{kept.pk}", unknown, "hand-made"):
        _make_volume(cloud, "images", name)
    image_delete(actor=SYSTEM, image=cloud.image)
    assert reconcile_host(cloud.host)["volumes_removed"] == 0  # the instance still boots from it
    assert cache in _volumes(cloud, "images")

    delete = cloud.client.delete(f"/api/v1/instances/{instance.pk}").json()
    assert run_operation(delete["operation"]["id"]) == "succeeded"
    assert reconcile_host(cloud.host)["volumes_removed"] == 1
    assert _volumes(cloud, "images") == {f"image-{kept.pk}", unknown, "hand-made"}
    event = AuditEvent.objects.get(action="host.volume_removed")
    assert event.details == {"kind": "cached_image", "pool": "andromede-h01-images",
                             "volume": cache}  # fmt: skip
    assert reconcile_host(cloud.host)["volumes_removed"] == 0


def test_copies_of_failed_snapshots_go_those_being_saved_stay(cloud, tmp_path):
    # Two images of the tenant: one in error (its file was refused), one a snapshot still
    # being saved (born `saving`, as instance_snapshot makes it).
    failed = factories.image(cloud.tenant, "failed")
    not_qcow2 = tmp_path / "not-a-qcow2"
    not_qcow2.write_bytes(b"\1" * 4096)
    with pytest.raises(InvalidRequest):
        factories.upload(failed, not_qcow2)
    failed.refresh_from_db()
    saving = factories.image(cloud.tenant, "saving", source_instance_id=uuid.uuid4())
    assert (failed.status, saving.status) == ("error", "saving")
    for image in (failed, saving):
        _make_volume(cloud, "instances", f"snapshot-{image.pk}")
    assert reconcile_host(cloud.host)["volumes_removed"] == 1
    assert _volumes(cloud, "instances") == {f"snapshot-{saving.pk}"}
    assert AuditEvent.objects.get(action="host.volume_removed").details["kind"] == "snapshot_copy"


def test_volumes_nobody_accounts_for_are_reported_once_and_never_deleted(cloud):
    instance = built(cloud)
    gone = f"instance-{uuid.uuid4()}-root"  # an instance this database never had
    strays = {("images", f"image-{uuid.uuid4()}"), ("images", "hand-made.qcow2"),
              ("instances", gone), ("instances", f"snapshot-{uuid.uuid4()}")}  # fmt: skip
    for role, name in strays:
        _make_volume(cloud, role, name)
    reconcile_host(cloud.host)
    reports = OrphanReport.objects.filter(kind="volume")
    assert {r.name for r in reports} == {f"andromede-h01-{role}/{name}" for role, name in strays}
    assert reconcile_host(cloud.host)["orphans"] == 0  # reported once
    events = AuditEvent.objects.filter(action="host.orphan", details__kind="volume")
    assert events.count() == 4
    for role in ("images", "instances"):  # never deleted
        assert {n for r, n in strays if r == role} <= _volumes(cloud, role)
    # The live instance's own disks are not orphans.
    assert not reports.filter(name__contains=str(instance.pk)).exists()
