"""A volume that outlives its instance, as a tenant sees it (issue 11, "Done means"): through
the API only, a real Celery worker on the host's queue, this machine's libvirtd with QEMU
(TCG) and the project's test image. Two guests boot once, each running a probe (its user
data, a `#!/bin/sh` script the image's init runs for 120 s, output on the console):

- the first waits for a hot-plugged disk, writes a marker on it, and says when it is gone;
- the second waits for the disk, reads the marker back, then waits for the disk to grow.

The test attaches the volume to the first guest, detaches it, attaches it to the second,
extends it live, and deletes that instance: the volume is available again, data kept. It
runs on both backends (issue 11): a qcow2 file in the host's volumes pool, and an RBD image
in the session's Ceph lab (tests/support/ceph_lab.py), declared as the zone's cluster; there,
once the volume is deleted, `rados ls` finds none of the image's objects."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
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
from tests.support.local_host import URI, onboarded_local_host
from tests.support.volume_guests import GIB_SECTORS, WAIT_FOR_DISK, WRITER, TenantView
from volumes.models import Volume

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
HOST = "e2e-vol"
READER = (
    "#!/bin/sh\n"
    + WAIT_FOR_DISK
    + """\
echo "VOLTEST read $(dd if=/dev/vdb bs=512 count=1 2>/dev/null | tr -d '\\000' | head -n 1)"
first=$(cat /sys/block/vdb/size)
i=0
while [ "$(cat /sys/block/vdb/size)" = "$first" ] && [ $i -lt 100 ]; do sleep 1; i=$((i+1)); done
echo "VOLTEST grown size=$(cat /sys/block/vdb/size)"
"""
)


@pytest.fixture
def real_host(settings: Any) -> Any:
    with onboarded_local_host(settings, HOST, "fr-e2e-vol") as host:
        yield host


@pytest.fixture(params=["dir", "rbd"])
def backend(
    request: pytest.FixtureRequest, real_host: Host, tmp_path: Path
) -> Iterator[CephLab | None]:
    """The default volume type `standard` on the directory backend, or on rbd: the session's
    Ceph lab as the zone's cluster (its key in a 0600 file, as an operator gives it); its pool
    and secret are taken off this machine's libvirtd afterwards."""
    if request.param == "dir":
        factories.volume_type("standard", max_size_gb=10)
        yield None
        return
    lab: CephLab = request.getfixturevalue("ceph_lab")
    key = tmp_path / "ceph.key"
    key.write_text(lab.client_key())
    key.chmod(0o600)
    cluster = CephCluster.objects.create(
        name="lab", zone=real_host.zone, monitors=[list(m) for m in lab.monitors],
        rados_pool=POOL, user=CLIENT, key_file=str(key),
    )  # fmt: skip
    factories.volume_type("standard", max_size_gb=10, backend="rbd")
    try:
        yield lab
    finally:
        conn = libvirt.open(URI)
        try:
            with contextlib.suppress(libvirt.libvirtError):
                pool = conn.storagePoolLookupByName(naming.ceph_pool(cluster.pk))
                pool.destroy()
                pool.undefine()
            with contextlib.suppress(libvirt.libvirtError):
                conn.secretLookupByUUIDString(str(cluster.secret_uuid)).undefine()
        finally:
            conn.close()


def test_a_volume_moves_between_guests_keeps_its_data_and_grows_live(
    real_host: Host, backend: CephLab | None, make_tenant: Any, make_caller: Any
) -> None:
    image = import_test_image_and_tiny_flavor()
    client = make_caller(make_tenant("acme"), "member").client()
    token = secrets.token_hex(8)

    view = TenantView(client)
    settled, console, says = view.settled, view.console, view.says

    def volume() -> dict[str, Any]:
        return view.volume(volume_id)

    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        # Both guests boot at once (one wait), each with its probe; the volume meanwhile.
        made = {}
        for name, probe in (("writer", WRITER.replace("{token}", token)), ("reader", READER)):
            answer = client.post(
                "/api/v1/instances",
                {"name": name, "flavor": "tiny", "image": str(image.pk), "user_data": probe},
                format="json",
            )
            assert answer.status_code == 202, answer.content
            made[name] = answer
        created = client.post("/api/v1/volumes", {"name": "data", "size_gb": 1}, format="json")
        volume_id = created.json()["volume"]["id"]
        settled(created)
        writer, reader = (made[n].json()["instance"]["id"] for n in ("writer", "reader"))
        for name in ("writer", "reader"):
            settled(made[name], timeout=180)
            says(made[name].json()["instance"]["id"], "ANDROMEDE-PROBE-BEGIN", timeout=90)

        # Attached to the running writer: the guest sees a 1 GiB disk and writes the marker.
        attach = client.post(
            f"/api/v1/instances/{writer}/volumes", {"volume": volume_id}, format="json"
        )
        assert attach.json()["volume"]["attachment"]["device"] == "vdb"
        settled(attach)
        assert (volume()["status"], volume()["attachment"]["instance"]) == ("in-use", writer)
        assert says(writer, "VOLTEST seen") == f"VOLTEST seen size={GIB_SECTORS}"
        says(writer, "VOLTEST written")

        # Detached: the guest lets go of the disk; the volume is available.
        settled(client.delete(f"/api/v1/instances/{writer}/volumes/{volume_id}"))
        assert says(writer, "VOLTEST gone", timeout=30) == "VOLTEST gone"
        assert (volume()["status"], volume()["attachment"]) == ("available", None)

        # Attached to the reader: the marker is there.
        settled(
            client.post(f"/api/v1/instances/{reader}/volumes", {"volume": volume_id},
                        format="json")
        )  # fmt: skip
        assert says(reader, "VOLTEST seen") == f"VOLTEST seen size={GIB_SECTORS}"
        assert says(reader, "VOLTEST read") == f"VOLTEST read MARKER-{token}"

        # Extended while in use: the running guest sees the new size, no reboot.
        settled(client.post(f"/api/v1/volumes/{volume_id}/extend", {"size_gb": 2},
                            format="json"))  # fmt: skip
        assert (volume()["status"], volume()["size_gb"]) == ("in-use", 2)
        assert says(reader, "VOLTEST grown") == f"VOLTEST grown size={2 * GIB_SECTORS}"
        assert console(reader).count("ANDROMEDE-READY") == 1  # the same boot

        # The instance goes; its volume stays, available, for the next one.
        settled(client.delete(f"/api/v1/instances/{reader}"))
        shown = volume()
        assert (shown["status"], shown["attachment"], shown["size_gb"]) == ("available", None, 2)
        settled(client.delete(f"/api/v1/instances/{writer}"))
        image_objects = None
        if backend is not None:  # rbd: the image's RADOS objects, listed before the delete
            image_objects = backend.image_prefix(naming.volume(volume_id))
            assert any(o.startswith(image_objects) for o in backend.rados_objects())
        settled(client.delete(f"/api/v1/volumes/{volume_id}"))
        if backend is not None:  # erased: none of them is left in the pool
            assert image_objects is not None
            left = [o for o in backend.rados_objects()
                    if image_objects in o or naming.volume(volume_id) in o]  # fmt: skip
            assert left == []
            erased_by = Volume.objects.get(pk=volume_id).erased_by
            assert erased_by.startswith("RBD image removed")
