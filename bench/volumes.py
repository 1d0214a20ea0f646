"""Volumes on the directory backend of the real local libvirtd: the control plane against
the raw driver calls it makes (issue 11, "A benchmark in bench/").

    BENCH_DATABASE_URL=postgresql://andromede:andromede@127.0.0.1:5432/andromede_bench4 \\
    CELERY_BROKER_URL=redis+socket:///…/redis-test.sock \\
    flock -o /tmp/andromede-hv.lock .venv/bin/python bench/volumes.py      # K=10 runs
    # --small: K=3; --runs K (<= 30), --size-gb N (default 1), --deadline S per run (60)

Like every bench, a bench database (BENCH_DATABASE_URL, bench/_setup.py) and a broker
(CELERY_BROKER_URL). This machine's libvirtd is onboarded as host bvol-local, its storage in
/var/tmp/andromede-bench-vol-*; a Celery worker (solo pool) serving the host's queue runs in
this process; the API is DRF's in-process APIClient with a real bearer token. Each pair:

1. create empty → available.
   raw            create_storage_volume (a sparse qcow2 in the volumes pool).
   control plane  POST /api/v1/volumes → the worker's write of `available` (the operation's
                  finished_at, in this process's wall clock: no polling charged); the API
                  is then asked once that it shows `available`.
2. create from the test image → available, at --size-gb.
   raw            copy_storage_volume of the cached image (qemu-img convert: a standalone
                  copy) + resize_storage_volume to the size asked for.
   control plane  POST /api/v1/volumes with the image, as 1.
3. delete (erase) → gone, of the volumes 2. made (the image's data in them).
   raw            delete_storage_volume (fill the file's holes with zeros, libvirt's wipe,
                  delete: docs/decisions.md, "Erasure").
   control plane  DELETE /api/v1/volumes/{id} → the worker's write of `deleted` (then GET
                  answers 404).
4. attach → the guest has the disk, and detach → the guest let go of it, on one running
   guest (an instance of the test image booted through the API, once, before anything is
   timed; its domain's next free device is vdb on both paths).
   raw            attach_disk of a 1 GiB volume at vdb (definition + hot-plug), then
                  detach_disk (definition + unplug, waiting for the guest to release it).
   control plane  POST /api/v1/instances/{id}/volumes → the worker's write of `in-use`;
                  DELETE /api/v1/instances/{id}/volumes/{volume_id} → `available`.
   A detach is mostly the guest's own ACPI unplug under TCG: the same on both paths.

The base image is cached on the host before anything is timed, one untimed warm-up of each
path runs first, then the paths alternate. The bench's rows (tenant bvol-acme, host
bvol-local, zone bvol-local-fr, type bvol-standard) are deleted before and after; the host's
pools and their files go at the end, also on failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _setup
from bench.network import RunFailed, wait

HOST = "bvol-local"
ZONE = "bvol-local-fr"
TENANT = "bvol-acme"
VOLUME_TYPE = "bvol-standard"
URI = "qemu:///system"
GIB = 1024**3
#: The pairs measured, in order.
PAIRS = ("create_empty", "create_from_image", "delete", "attach", "detach")
FLAVOR = "bvol-tiny"

_TENANT = "SELECT id FROM tenants_tenant WHERE slug = %(tenant)s"
_INSTANCES = f"(SELECT id FROM compute_instance WHERE tenant_id IN ({_TENANT}))"  # noqa: S608
_RESET = (
    "DELETE FROM volumes_volumeattachment WHERE volume_id IN (SELECT id FROM volumes_volume "
    "WHERE tenant_id IN (SELECT id FROM tenants_tenant WHERE slug = %(tenant)s))",
    *_setup.network_reset_sql(_TENANT),
    "DELETE FROM compute_allocation WHERE instance_id IN " + _INSTANCES,  # noqa: S608
    "DELETE FROM compute_instance WHERE id IN " + _INSTANCES,  # noqa: S608
    "DELETE FROM compute_operation WHERE host_name = %(host)s OR tenant_id IN "
    "(SELECT id FROM tenants_tenant WHERE slug = %(tenant)s)",
    "DELETE FROM volumes_volume WHERE tenant_id IN "
    "(SELECT id FROM tenants_tenant WHERE slug = %(tenant)s) "
    "OR host_id IN (SELECT id FROM compute_host WHERE name = %(host)s)",
    "DELETE FROM volumes_volumetype_access WHERE volumetype_id IN "
    "(SELECT id FROM volumes_volumetype WHERE name = %(type)s)",
    "DELETE FROM volumes_volumetype WHERE name = %(type)s",
    "DELETE FROM compute_orphanreport WHERE host_id IN "
    "(SELECT id FROM compute_host WHERE name = %(host)s)",
    "DELETE FROM compute_storagepool WHERE host_id IN "
    "(SELECT id FROM compute_host WHERE name = %(host)s)",
    "DELETE FROM compute_host WHERE name = %(host)s",
)


def reset_rows() -> None:
    """This bench's rows from a previous run (the database is the bench one)."""
    for statement in _RESET:
        _setup.execute(statement, {"tenant": TENANT, "host": HOST, "type": VOLUME_TYPE})


class Lab:
    def __init__(self, host: Any, image: Any, client: Any, size_gb: int, deadline_s: float):
        from hosts.hypervisors import hypervisor_for
        from hosts.naming import storage_pool

        self.host = host
        self.image = image
        self.client = client
        self.size_gb = size_gb
        self.deadline_s = deadline_s
        self.hv = hypervisor_for(host)
        self.pools = {role: storage_pool(HOST, role) for role in ("images", "volumes")}
        self.parts: dict[str, dict[str, float]] = {}  # the last run's, by pair
        self._answered = 0.0
        self.instance_id = ""  # the guest of the attach pairs (boot_guest)
        self.raw_disk = ""

    def boot_guest(self) -> float:
        """Boot the guest of the attach pairs through the API, up to its ready line, and make
        the raw path's volume; seconds the boot took (untimed in the figures)."""
        from hosts.naming import domain
        from hypervisor.base import StorageVolumeSpec

        t0 = time.monotonic()
        body = {"name": "guest", "flavor": FLAVOR, "image": str(self.image.pk)}
        answer = self.client.post("/api/v1/instances", body, format="json")
        if answer.status_code != 202:
            raise RunFailed(f"POST /instances answered {answer.status_code}: {answer.content!r}")
        self.instance_id = answer.json()["instance"]["id"]
        url = f"/api/v1/instances/{self.instance_id}"
        deadline = time.monotonic() + 240
        wait(lambda: self.client.get(url).json()["status"] != "building", deadline,
             "the guest to boot", 0.5)  # fmt: skip
        if (status := self.client.get(url).json()["status"]) != "active":
            raise RunFailed(f"the guest is {status}")
        wait(lambda: "ANDROMEDE-READY" in self.client.get(f"{url}/console").json()["output"],
             deadline, "the guest's ready line", 0.5)  # fmt: skip
        self.domain = domain(self.instance_id)
        self.raw_disk = f"raw-{uuid.uuid4().hex[:12]}-attach"
        self.hv.create_storage_volume(
            StorageVolumeSpec(self.pools["volumes"], self.raw_disk, GIB, format="qcow2")
        )
        self.cp_volume, _ = self._create("warm", {"name": "a", "size_gb": 1})
        return time.monotonic() - t0

    def raw_attach(self) -> dict[str, float]:
        """attach_disk then detach_disk of the raw volume at vdb: seconds each."""
        from hypervisor.base import DiskSpec

        disk = DiskSpec(pool=self.pools["volumes"], volume=self.raw_disk, target="vdb")
        t0 = time.perf_counter()
        self.hv.attach_disk(self.domain, disk)
        attached = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.hv.detach_disk(self.domain, "vdb", timeout_seconds=self.deadline_s)
        return {"attach": attached, "detach": time.perf_counter() - t0}

    def cp_attach(self) -> dict[str, float]:
        """The same through the API: seconds to the worker's write of each outcome."""
        url = f"/api/v1/instances/{self.instance_id}/volumes"
        t0 = time.time()
        answer = self.client.post(url, {"volume": self.cp_volume}, format="json")
        self._answered = time.time()
        attached = self._settled("attach", t0, answer, self.cp_volume, "in-use")
        t0 = time.time()
        answer = self.client.delete(f"{url}/{self.cp_volume}")
        self._answered = time.time()
        return {
            "attach": attached,
            "detach": self._settled("detach", t0, answer, self.cp_volume, "available"),
        }

    # --- raw driver path ---------------------------------------------------------------------

    def raw(self) -> dict[str, float]:
        """The three raw pairs on fresh volumes: seconds each."""
        from hosts.naming import cached_image
        from hypervisor.base import StorageVolumeSpec

        pool, suffix = self.pools["volumes"], uuid.uuid4().hex[:12]
        empty = StorageVolumeSpec(pool, f"raw-{suffix}-empty", GIB, format="qcow2")
        copy = StorageVolumeSpec(pool, f"raw-{suffix}-copy", self.size_gb * GIB, format="qcow2")
        timings = {}
        t0 = time.perf_counter()
        self.hv.create_storage_volume(empty)
        timings["create_empty"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.hv.copy_storage_volume(self.pools["images"], cached_image(self.image.pk), copy)
        if self.hv.storage_volume_info(pool, copy.name).capacity_bytes < copy.capacity_bytes:
            self.hv.resize_storage_volume(pool, copy.name, copy.capacity_bytes)
        timings["create_from_image"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.hv.delete_storage_volume(pool, copy.name)
        timings["delete"] = time.perf_counter() - t0
        self.hv.delete_storage_volume(pool, empty.name, wipe=False)
        return timings

    # --- control plane path ------------------------------------------------------------------

    def _settled(self, pair: str, t0: float, answer: Any, volume_id: str, want: str) -> float:
        """Seconds from `t0` (wall clock) to the worker's write of the volume's `want` status
        (its operation's finished_at); then the API is asked, once, that it shows `want`.
        The operation's row is watched every 20 ms (a cheap query: watching through the API
        every few ms took the worker's CPU in this process). Where the time went (the
        answer, the queue, the worker's steps) is kept in `self.parts[pair]`."""
        from operations.models import Operation

        if answer.status_code != 202:
            raise RunFailed(f"answered {answer.status_code}: {answer.content[:400]!r}")
        rows = Operation.objects.filter(pk=answer.json()["operation"]["id"])
        ended = ("succeeded", "failed")
        wait(
            lambda: rows.values_list("status", flat=True).get() in ended,
            time.monotonic() + self.deadline_s, f"volume {volume_id} {want}", 0.02,
        )  # fmt: skip
        op = rows.get()
        if op.status != "succeeded" or op.finished_at is None or op.started_at is None:
            raise RunFailed(f"operation {op.pk} is {op.status}: {op.error}")
        got = self.client.get(f"/api/v1/volumes/{volume_id}")
        shown = "deleted" if got.status_code == 404 else got.json()["status"]
        if shown != want:
            raise RunFailed(f"volume {volume_id} shows {shown}, not {want}")
        first = datetime.fromisoformat(op.steps[0]["started_at"])
        last_end = datetime.fromisoformat(op.steps[-1]["started_at"]).timestamp() + float(
            op.steps[-1]["seconds"]
        )
        self.parts[pair] = {
            "answered": self._answered - t0,
            "queued → leased": (op.started_at - op.created_at).total_seconds()
            if op.started_at
            else 0.0,
            "leased → first step": (first - op.started_at).total_seconds()
            if op.started_at
            else 0.0,
            **{f"step {step['name']}": float(step["seconds"]) for step in op.steps},
            "last step → finished": op.finished_at.timestamp() - last_end,
        }
        return op.finished_at.timestamp() - t0

    def _create(self, pair: str, body: dict[str, Any]) -> tuple[str, float]:
        t0 = time.time()
        answer = self.client.post("/api/v1/volumes", body, format="json")
        self._answered = time.time()
        if answer.status_code != 202:
            raise RunFailed(f"POST answered {answer.status_code}: {answer.content[:400]!r}")
        volume_id = answer.json()["volume"]["id"]
        return volume_id, self._settled(pair, t0, answer, volume_id, "available")

    def _delete(self, pair: str, volume_id: str) -> float:
        t0 = time.time()
        answer = self.client.delete(f"/api/v1/volumes/{volume_id}")
        self._answered = time.time()
        return self._settled(pair, t0, answer, volume_id, "deleted")

    def control_plane(self) -> dict[str, float]:
        """The three pairs through the API: seconds to the worker's write of the outcome."""
        t: dict[str, float] = {}
        empty, t["create_empty"] = self._create("create_empty", {"name": "e", "size_gb": 1})
        body = {"name": "c", "size_gb": self.size_gb, "image": str(self.image.pk)}
        copy, t["create_from_image"] = self._create("create_from_image", body)
        t["delete"] = self._delete("delete", copy)
        self._delete("delete_empty", empty)
        return t


def print_stats(label: str, values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    stats = {"p50": _setup.percentile(ms, 50), "p90": _setup.percentile(ms, 90), "max": max(ms)}
    print(f"  {label:<46} n={len(ms)} p50={stats['p50']:.1f} ms p90={stats['p90']:.1f} ms "
          f"max={stats['max']:.1f} ms")  # fmt: skip
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="K=3 runs")
    parser.add_argument("--runs", type=int, default=None, help="K timed runs per path (<= 30)")
    parser.add_argument("--size-gb", type=int, default=1, help="size of the copies, GiB")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds per step, max")
    args = parser.parse_args()
    runs = min(args.runs or (3 if args.small else 10), 30)

    _setup.setup_django()
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from hosts.hypervisors import close_all
    from hosts.services import onboarding
    from iaas.celery import app, host_queue
    from images.host_cache import cache_image
    from images.models import Image
    from tests.support import hypervisor_lab
    from volumes.services.volume_types import volume_type_ensure

    started = time.monotonic()
    hypervisor_lab.ensure_libvirtd()
    image_path = hypervisor_lab.ensure_test_image()
    networks_before = _setup.libvirt_networks(URI)
    # Networks: only those this run makes, at the end.
    leftovers = _setup.remove_host_objects(HOST, None, URI)
    if leftovers:
        print(f"removed leftovers of a previous run: {', '.join(leftovers)}")
    root = Path(tempfile.mkdtemp(prefix="andromede-bench-vol-", dir="/var/tmp"))
    root.chmod(0o711)
    settings.IMAGE_STORE_DIR = root / "image-store"
    settings.IMAGE_STORE_ZONE = ZONE
    settings.VOLUME_DEFAULT_TYPE = VOLUME_TYPE
    # The attach pairs' guest gets a legacy libvirt network: never the hypervisor lane's
    # subnets (198.51.100.128/25) nor make run's (203.0.113.0/24 on OVN).
    settings.TENANT_NETWORK_SUPERNETS = ["198.51.100.0/25"]
    # The worker's per-task INFO lines would bury the figures.
    logging.getLogger("celery").setLevel(logging.WARNING)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    # The bench measures latency, not the rate limits it would otherwise hit.
    settings.API_THROTTLE_RATES = dict.fromkeys(settings.API_THROTTLE_RATES)
    raw_results: list[dict[str, float]] = []
    cp_results: list[dict[str, float]] = []
    parts: list[dict[str, dict[str, float]]] = []
    try:
        reset_rows()
        host = onboarding.host_onboard(
            actor=_setup.system_actor(),
            registration=onboarding.HostRegistration(
                name=HOST, zone=_setup.ensure_zone(ZONE, "FR"), libvirt_uri=URI,
                storage_root=str(root), domain_type="qemu",
            ),
        )  # fmt: skip
        print(f"host {HOST}: libvirt {host.libvirt_version}, storage {root}")
        Image.objects.filter(name="andromede-test").update(status="deleted")
        call_command(
            "image_import", "andromede-test", str(image_path), "--disk-format", "qcow2",
            "--public", verbosity=0,
        )  # fmt: skip
        image = Image.objects.get(name="andromede-test", status="active")
        _setup.ensure_flavor(FLAVOR, 1, 128, 1)
        volume_type_ensure(actor=_setup.system_actor(), name=VOLUME_TYPE, max_size_gb=100)
        tenant = _setup.ensure_tenant(TENANT, ["FR"])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {_setup.api_token(tenant, 'bvol-m')}")
        lab = Lab(host, image, client, args.size_gb, args.deadline)
        t = time.perf_counter()
        cache_image(lab.hv, host, image)
        print(f"test image ({image.size_bytes} bytes, virtual {image.virtual_size_bytes}) "
              f"cached on the host in {time.perf_counter() - t:.2f} s; copies of "
              f"{args.size_gb} GiB")  # fmt: skip

        with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
            print(f"the attach pairs' guest booted through the API in {lab.boot_guest():.0f} s")
            print("warm-up (untimed): one run of each path")
            lab.raw(), lab.raw_attach()
            lab.control_plane(), lab.cp_attach()
            for i in range(1, runs + 1):
                raw_results.append({**lab.raw(), **lab.raw_attach()})
                cp_results.append({**lab.control_plane(), **lab.cp_attach()})
                parts.append(dict(lab.parts))
                print(f"run {i}: " + ", ".join(
                    f"{pair} raw {raw_results[-1][pair] * 1000:.0f} ms / "
                    f"cp {cp_results[-1][pair] * 1000:.0f} ms" for pair in PAIRS
                ))  # fmt: skip
    finally:
        close_all()
        removed = _setup.remove_host_objects(HOST, networks_before, URI)
        shutil.rmtree(root, ignore_errors=True)
        print(f"cleanup: {', '.join(removed) or 'nothing'} removed; {root} deleted")
        reset_rows()

    print(f"\n=== {len(raw_results)} timed runs per path ===")
    for pair in PAIRS:
        raw = print_stats(f"raw: {pair}", [r[pair] for r in raw_results])
        cp = print_stats(f"control plane: {pair}", [r[pair] for r in cp_results])
        print(f"  ratio control plane / raw, {pair}: p50 x{cp['p50'] / raw['p50']:.2f}, "
              f"p90 x{cp['p90'] / raw['p90']:.2f}")  # fmt: skip
    print("where the control plane's time goes (the POST or DELETE answered, queued → leased, "
          "the worker's steps):")  # fmt: skip
    for pair in PAIRS if parts else ():
        for part in parts[0][pair]:
            print_stats(f"{pair}: {part}", [p[pair].get(part, 0.0) for p in parts])
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/9")
    raise SystemExit(main())
