"""Volumes on Ceph RBD through the API, on libvirt's fake hypervisor (test:///default), which
keeps rbd pools and their volumes as definitions: a volume type with backend `rbd` places
its volumes in the Ceph cluster of an allowed zone (hosts.CephCluster), with no host of
their own; a host of that zone makes, grows and removes them through the cluster's pool;
they attach to an instance on any host of the zone (a shared backend), as network disks.
What the fake cannot show (data, guests) is tests/e2e/test_volume_attach.py's, run on
both backends."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from compute.models import Instance
from compute.worker.steps import domain_spec
from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import CephCluster, OrphanReport
from hypervisor.base import NotFound, StorageVolumeSpec
from hypervisor.libvirt import LibvirtHypervisor
from network.selectors import device_ports
from operations.worker import run_operation
from tests import factories
from tests.support.api_checks import assert_error, business_rows
from tests.support.instance_api import active_instance
from volumes.models import Volume
from volumes.services.reconciler import NOT_OURS, reconcile_volume_pools
from volumes.worker.handlers import ERASED_BY_NOTHING

pytestmark = pytest.mark.django_db


@pytest.fixture
def rcloud(cloud: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """The `cloud` with a Ceph cluster in its zone (a key file of the right shape) and the
    public type `ceph` (rbd), besides the default `standard` (dir)."""
    key = tmp_path / "ceph.key"
    key.write_text(base64.b64encode(bytes(12) + os.urandom(16)).decode())
    key.chmod(0o600)
    cloud.cluster = CephCluster.objects.create(
        name="ceph-1", zone=cloud.zone, monitors=[["192.0.2.10", 6789]],
        rados_pool="volumes", user="andromede", key_file=str(key),
    )  # fmt: skip
    cloud.standard = factories.volume_type("standard", max_size_gb=100)
    cloud.ceph = factories.volume_type("ceph", max_size_gb=100, backend="rbd")
    cloud.pool = naming.ceph_pool(cloud.cluster.pk)
    return cloud


def create(client: Any, **body: Any) -> Any:
    return client.post(
        "/api/v1/volumes", {"name": "data", "size_gb": 2, "volume_type": "ceph"} | body,
        format="json",
    )  # fmt: skip


def made(cloud: SimpleNamespace, **body: Any) -> dict[str, Any]:
    answer = create(cloud.client, **body)
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    return dict(cloud.client.get(f"/api/v1/volumes/{answer.json()['volume']['id']}").json())


def test_an_rbd_volume_lives_in_the_zones_cluster_and_is_made_grown_and_erased(rcloud):
    answer = create(rcloud.client)
    assert answer.status_code == 202, answer.content
    body = answer.json()
    row = Volume.objects.get(pk=body["volume"]["id"])
    assert (row.host, row.ceph_cluster, row.zone) == (None, rcloud.cluster, rcloud.zone)
    assert run_operation(body["operation"]["id"]) == "succeeded"
    volume = rcloud.client.get(f"/api/v1/volumes/{row.pk}").json()
    shown = (volume["status"], volume["zone"], volume["volume_type"])
    assert shown == ("available", "fr-par-1", "ceph")
    hv = hypervisor_for(rcloud.host)
    info = hv.storage_volume_info(rcloud.pool, naming.volume(row.pk))
    assert (info.format, info.capacity_bytes) == ("raw", 2 << 30)

    grown = rcloud.client.post(f"/api/v1/volumes/{row.pk}/extend", {"size_gb": 3}, format="json")
    assert grown.status_code == 202, grown.content
    assert run_operation(grown.json()["operation"]["id"]) == "succeeded"
    assert rcloud.client.get(f"/api/v1/volumes/{row.pk}").json()["size_gb"] == 3

    gone = rcloud.client.delete(f"/api/v1/volumes/{row.pk}")
    assert gone.status_code == 202, gone.content
    assert run_operation(gone.json()["operation"]["id"]) == "succeeded"
    row.refresh_from_db()
    assert (row.status, row.erased_by) == ("deleted", ERASED_BY_NOTHING)  # the fake: no data
    with pytest.raises(NotFound):
        hv.storage_volume_info(rcloud.pool, naming.volume(row.pk))


def test_an_rbd_volume_from_an_image_is_made_on_a_host_of_the_zone(rcloud):
    volume = made(rcloud, image=str(rcloud.image.pk))
    assert (volume["status"], volume["source_image"]) == ("available", str(rcloud.image.pk))
    hv = hypervisor_for(rcloud.host)
    assert hv.storage_volume_info(rcloud.pool, naming.volume(volume["id"])).format == "raw"


def test_without_a_cluster_in_an_allowed_zone_there_is_no_valid_host(rcloud):
    CephCluster.objects.all().delete()
    assert_error(create(rcloud.client), 409, "no_valid_host")
    assert not Volume.objects.exists()
    assert create(rcloud.client, volume_type="standard").status_code == 202  # dir still


def test_a_cluster_measured_without_room_takes_no_volume_and_nothing_changes(rcloud):
    CephCluster.objects.update(capacity_bytes=10 << 30, available_bytes=1 << 30)
    before = business_rows()
    refused = create(rcloud.client)  # 2 GiB
    assert_error(refused, 409, "no_valid_host")
    assert refused.json()["error"]["details"]["size_gb"] == 2
    assert business_rows() == before
    assert create(rcloud.client, size_gb=1).status_code == 202  # what fits is placed
    CephCluster.objects.update(available_bytes=None)  # never measured: not a filter
    assert create(rcloud.client, name="big").status_code == 202


def test_what_rbd_volumes_cannot_do_yet_is_refused_clearly(rcloud):
    volume = made(rcloud)
    snapshot = rcloud.client.post(
        "/api/v1/volume-snapshots", {"volume": volume["id"], "name": "s"}, format="json"
    )
    assert_error(snapshot, 400, "not_supported_yet")
    exported = rcloud.client.post(f"/api/v1/volumes/{volume['id']}/export")
    assert_error(exported, 400, "not_supported_yet")
    assert Volume.objects.get(pk=volume["id"]).status == "available"
    boot = rcloud.client.post(
        "/api/v1/instances",
        {"name": "vm-1", "flavor": "small", "keypair": "laptop",
         "boot_volume": {"image": str(rcloud.image.pk), "size_gb": 2, "volume_type": "ceph"}},
        format="json",
    )  # fmt: skip
    assert_error(boot, 400, "not_supported_yet")


def test_an_rbd_volume_attaches_on_any_host_of_its_zone_as_a_network_disk(
    rcloud, monkeypatch: pytest.MonkeyPatch
):
    """The volume has no host: an instance on another host of the zone takes it (shared),
    the cluster's pool is made ready there, and the domain's definition names its image."""
    plugged: list[Any] = []
    monkeypatch.setattr(
        LibvirtHypervisor, "attach_disk", lambda self, name, disk: plugged.append(disk)
    )  # the fake cannot attach devices (Unsupported): the call is recorded instead
    volume = made(rcloud)  # made from h01, the zone's only host then
    other = factories.host("h02", rcloud.zone)
    instance_id = active_instance(rcloud)
    Instance.objects.filter(pk=instance_id).update(host=other)
    answer = rcloud.client.post(
        f"/api/v1/instances/{instance_id}/volumes", {"volume": volume["id"]}, format="json"
    )
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    [disk] = plugged
    assert (disk.pool, disk.volume, disk.format) == (rcloud.pool, naming.volume(volume["id"]),
                                                     "raw")  # fmt: skip
    # The cluster's pool was ensured on h02 (the instance's host), not only on h01.
    info = hypervisor_for(other).pool_info(rcloud.pool)
    assert info.active
    instance = Instance.objects.get(pk=instance_id)
    spec = domain_spec(instance, device_ports(instance.pk))
    assert any(d.pool == rcloud.pool and d.format == "raw" for d in spec.disks)


def test_an_rbd_volume_does_not_attach_in_another_zone(rcloud):
    volume = made(rcloud)
    elsewhere = factories.zone("fr-mrs-1")
    factories.host("m01", elsewhere)
    instance_id = active_instance(rcloud)
    Instance.objects.filter(pk=instance_id).update(host=factories.host("m02", elsewhere))
    answer = rcloud.client.post(
        f"/api/v1/instances/{instance_id}/volumes", {"volume": volume["id"]}, format="json"
    )
    assert_error(answer, 409, "volume_on_other_host")


def test_images_in_the_cluster_no_live_rbd_volume_accounts_for_are_reported_once(rcloud):
    live, gone = made(rcloud), made(rcloud, name="gone")
    deleted = rcloud.client.delete(f"/api/v1/volumes/{gone['id']}")
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    on_dir = made(rcloud, name="local", volume_type="standard")
    stranger = naming.volume(uuid.uuid4())
    # Behind the control plane's back: the deleted volume's image back, an image nobody
    # knows, a dir volume's name in the cluster, an image Andromède never names.
    hv = hypervisor_for(rcloud.host)
    for name in (naming.volume(gone["id"]), stranger, naming.volume(on_dir["id"]), "backup"):
        hv.create_storage_volume(StorageVolumeSpec(rcloud.pool, name, 1 << 20, format="raw"))

    assert reconcile_volume_pools() == {"h01": 0, "ceph:ceph-1": 4}
    measured = CephCluster.objects.get()  # its pool's space, as the host read it
    info = hv.pool_info(rcloud.pool)
    assert (measured.capacity_bytes, measured.available_bytes) == (
        info.capacity_bytes, info.available_bytes,
    )  # fmt: skip
    assert measured.space_measured_at is not None
    reports = {r.details["volume"]: r for r in OrphanReport.objects.all()}
    assert {name: r.details["reason"] for name, r in reports.items()} == {
        naming.volume(gone["id"]): "its volume was deleted",
        stranger: "no volume has this id",
        naming.volume(on_dir["id"]): "its volume is not stored on this cluster",
        "backup": NOT_OURS,
    }  # the live volume's image is not among them
    assert naming.volume(live["id"]) not in reports
    for report in reports.values():
        assert (report.host, report.details["ceph_cluster"]) == (rcloud.host, "ceph-1")
        assert report.name == f"{rcloud.pool}/{report.details['volume']}"
    assert reconcile_volume_pools() == {"h01": 0, "ceph:ceph-1": 0}  # seen: not twice
    # Reported, never removed: they may be a tenant's data.
    assert {i.name for i in hv.list_storage_volumes(rcloud.pool)} >= set(reports)
