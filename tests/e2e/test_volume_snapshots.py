"""Volume snapshots and boot from volume as a tenant sees them (issue 11 "Done means"):
through the API only, a real Celery worker on the host's queue, this machine's libvirtd
with QEMU (TCG) and the project's test image. One guest boots, from a volume made from the
image (its root disk is that volume, at vda); its probe writes a marker on a data volume
hot-plugged as vdb. The data volume is snapshotted while in use (a live, crash-consistent
copy through libvirt's backup job), a volume is made from the snapshot and its file holds
the marker (read offline with qemu-img: no second boot). Deleting the instance, asked to
keep its boot volume, leaves that volume `available`; deleting the data volume leaves its
snapshot."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from hosts.models import Host
from iaas.celery import app, host_queue
from tests import factories
from tests.e2e.conftest import import_test_image_and_tiny_flavor
from tests.support.local_host import onboarded_local_host
from tests.support.volume_guests import WAIT_FOR_DISK, TenantView

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
HOST = "e2e-snap"
WRITER = (
    "#!/bin/sh\n"
    + WAIT_FOR_DISK
    + """\
printf 'MARKER-%s\\n' "{token}" | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null
sync
echo "VOLTEST written"
"""
)


@pytest.fixture
def real_host(settings: Any) -> Any:
    with onboarded_local_host(settings, HOST, "fr-e2e-snap") as host:
        yield host


def first_sector(path: Path, scratch: Path) -> str:
    """The first 512 bytes of a qcow2 volume's disk, as text (read offline)."""
    out = scratch / "sector.raw"
    subprocess.run(
        ["qemu-img", "dd", "-U", "-f", "qcow2", "-O", "raw", "bs=512", "count=1",
         f"if={path}", f"of={out}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_bytes().rstrip(b"\0").decode(errors="replace").strip()


def test_snapshot_of_an_in_use_volume_and_an_instance_booted_from_a_volume(
    real_host: Host, make_tenant: Any, make_caller: Any, tmp_path: Path
) -> None:
    image = import_test_image_and_tiny_flavor()
    factories.volume_type("standard", max_size_gb=10)
    client = make_caller(make_tenant("acme"), "member").client()
    api = TenantView(client)
    token = secrets.token_hex(8)
    volumes_dir = Path(real_host.storage_root) / "volumes"

    def shown(kind: str, pk: str) -> dict[str, Any]:
        return dict(client.get(f"/api/v1/{kind}/{pk}").json())

    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        # Boot from a new volume copied from the image, kept when the instance goes.
        booted = client.post(
            "/api/v1/instances",
            {"name": "vm", "flavor": "tiny", "user_data": WRITER.replace("{token}", token),
             "boot_volume": {"image": str(image.pk), "size_gb": 1,
                             "delete_on_termination": False}},
            format="json",
        )  # fmt: skip
        assert booted.status_code == 202, booted.content
        vm = booted.json()["instance"]["id"]
        data = client.post("/api/v1/volumes", {"name": "data", "size_gb": 1}, format="json")
        data_id = data.json()["volume"]["id"]
        api.settled(booted, timeout=240)
        api.settled(data)
        api.says(vm, "ANDROMEDE-READY", timeout=120)  # it booted from its volume
        [root] = client.get(f"/api/v1/instances/{vm}/volumes").json()
        assert (root["status"], root["attachment"]["device"]) == ("in-use", "vda")

        # The data volume, hot-plugged as vdb: the guest writes the marker.
        api.settled(client.post(f"/api/v1/instances/{vm}/volumes", {"volume": data_id},
                                format="json"))  # fmt: skip
        api.says(vm, "VOLTEST written")

        # Snapshot while in use: a live copy, crash-consistent; the volume stays in use.
        taken = client.post(
            "/api/v1/volume-snapshots", {"volume": data_id, "name": "live"}, format="json"
        )
        assert taken.status_code == 202, taken.content
        snapshot_id = taken.json()["volume_snapshot"]["id"]
        api.operation_done(taken.json()["operation"], timeout=120)
        snapshot = shown("volume-snapshots", snapshot_id)
        assert (snapshot["status"], snapshot["consistency"]) == ("available", "crash-consistent")
        assert shown("volumes", data_id)["status"] == "in-use"

        # A volume from the snapshot, larger: its disk holds the marker.
        restored = client.post(
            "/api/v1/volumes", {"name": "restored", "size_gb": 2, "snapshot": snapshot_id},
            format="json",
        )  # fmt: skip
        restored_id = restored.json()["volume"]["id"]
        api.settled(restored, timeout=120)
        again = shown("volumes", restored_id)
        assert (again["status"], again["size_gb"]) == ("available", 2)
        marker = first_sector(volumes_dir / f"volume-{restored_id}", tmp_path)
        assert marker == f"MARKER-{token}"

        # The instance goes, its boot volume stays (available), as asked.
        api.settled(client.delete(f"/api/v1/instances/{vm}"))
        kept = shown("volumes", root["id"])
        assert (kept["status"], kept["attachment"]) == ("available", None)
        assert (volumes_dir / f"volume-{root['id']}").exists()

        # The snapshot outlives its volume.
        api.settled(client.delete(f"/api/v1/volumes/{data_id}"))
        assert shown("volume-snapshots", snapshot_id)["status"] == "available"
        for kind, pk in (("volume-snapshots", snapshot_id), ("volumes", restored_id),
                         ("volumes", root["id"])):  # fmt: skip
            api.settled(client.delete(f"/api/v1/{kind}/{pk}"))
        assert not list(volumes_dir.glob("vol*"))
