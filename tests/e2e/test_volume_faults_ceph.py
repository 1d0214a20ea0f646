"""Issue 11's fault on Ceph, through the API only: the OSD is killed (SIGKILL) before an rbd
volume is attached to a running guest. QEMU's open of the image then waits on the OSD for as
long as it takes; the driver's call ends at its bound, so the attach operation ends (failed,
never stuck), the volume is `available` again with a fault the tenant can read, or, if the
undo itself could not get through, `in-use` with a fault saying a detach finishes the job
(never `attaching`, never free while possibly plugged in), and the instance is idle and can
still be deleted. A Ceph
lab of its own (memstore: the cluster does not come back once its OSD is gone)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import libvirt
import pytest
from celery.contrib.testing.worker import start_worker

from hosts import naming
from hosts.models import CephCluster, Host
from iaas.celery import app, host_queue
from tests import factories
from tests.e2e.conftest import import_test_image_and_tiny_flavor
from tests.support.ceph_lab import CLIENT, POOL, CephLab
from tests.support.fault_lab import wait_for
from tests.support.local_host import URI, onboarded_local_host
from tests.support.volume_guests import TenantView

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
HOST = "e2e-cephf"
#: The driver's bound on each libvirt call here (the default is 30 s): above the 17 s a
#: destroy of the stuck QEMU takes (SIGTERM, 10 s of grace, SIGKILL, the abandoned job).
CALL_TIMEOUT = 25


@pytest.fixture
def real_host(settings: Any) -> Any:
    settings.HYPERVISOR_CALL_TIMEOUT_SECONDS = CALL_TIMEOUT
    with onboarded_local_host(settings, HOST, "fr-e2e-cephf") as host:
        yield host


@pytest.fixture
def lab(real_host: Host, tmp_path: Path) -> Any:
    lab = CephLab()
    cluster = None
    try:
        lab.start()
        key = tmp_path / "ceph.key"
        key.write_text(lab.client_key())
        key.chmod(0o600)
        cluster = CephCluster.objects.create(
            name="fault", zone=real_host.zone, monitors=[list(m) for m in lab.monitors],
            rados_pool=POOL, user=CLIENT, key_file=str(key),
        )  # fmt: skip
        yield lab
    finally:
        lab.stop()
        if cluster is not None:
            conn = libvirt.open(URI)
            try:
                for found in conn.listAllStoragePools():
                    if found.name() == naming.ceph_pool(cluster.pk):
                        if found.isActive():
                            found.destroy()
                        found.undefine()
                for secret in conn.listAllSecrets():
                    if secret.UUIDString() == str(cluster.secret_uuid):
                        secret.undefine()
            finally:
                conn.close()


def test_an_attach_while_the_osd_is_dead_fails_cleanly(
    real_host: Host, lab: CephLab, make_tenant: Any, make_caller: Any
) -> None:
    image = import_test_image_and_tiny_flavor()
    factories.volume_type("standard", max_size_gb=10, backend="rbd")
    client = make_caller(make_tenant("acme"), "member").client()
    view = TenantView(client)
    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        made = client.post(
            "/api/v1/instances",
            {"name": "vm", "flavor": "tiny", "image": str(image.pk)},
            format="json",
        )
        created = client.post("/api/v1/volumes", {"name": "data", "size_gb": 1}, format="json")
        view.settled(created)
        view.settled(made, timeout=180)
        instance_id = made.json()["instance"]["id"]
        volume_id = created.json()["volume"]["id"]

        lab.kill_osd()
        started = time.monotonic()
        answer = client.post(
            f"/api/v1/instances/{instance_id}/volumes", {"volume": volume_id}, format="json"
        )
        assert answer.status_code == 202, answer.content
        operation = answer.json()["operation"]
        done = wait_for(
            lambda: (
                (body := client.get(f"/api/v1/operations/{operation['id']}").json())["status"]
                in ("succeeded", "failed")
                and body
            ),
            4 * CALL_TIMEOUT + 60,
            "the attach to end",
            every=0.5,
        )
        # Ends: failed at the driver's bound (plus the undo's own calls), never stuck.
        assert done["status"] == "failed", done
        assert time.monotonic() - started < 4 * CALL_TIMEOUT + 30
        # One of the two outcomes compute.worker.volumes documents: taken out again, the
        # volume is available; if even that could not be done (libvirt still holds the
        # domain for the abandoned attach), it stays in-use and says a detach finishes it.
        volume = client.get(f"/api/v1/volumes/{volume_id}").json()
        if volume["status"] == "available":
            assert volume["attachment"] is None
            assert volume["fault"].startswith("The attach failed")
        else:
            assert volume["status"] == "in-use", volume
            assert "detach the volume" in volume["fault"]
        instance = client.get(f"/api/v1/instances/{instance_id}").json()
        assert (instance["status"], instance["task_state"]) == ("active", None)

        # The guest's QEMU, stuck in librados, still goes with its instance.
        view.settled(client.delete(f"/api/v1/instances/{instance_id}"), timeout=180)
