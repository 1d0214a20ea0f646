"""Provisioning on the real local libvirtd: the control plane against the raw driver (issue 4).

    .venv/bin/python bench/provision.py            # K=5 runs of each path
    .venv/bin/python bench/provision.py --small    # K=2

Both paths boot the same guest (the project's test image, 1 vCPU, 256 MiB, qcow2 overlay on
the cached base volume, NoCloud seed, one NIC on an isolated network) on qemu:///system (TCG):

raw            LibvirtHypervisor calls only: overlay + seed volume + network + define + start;
               timed to domain_info() running, then to the READY line in console_output().
control plane  POST /api/v1/instances (in-process APIClient, real token) with a Celery worker
               consuming the host's queue (start_worker, solo pool, in this process); timed to
               the instance's power_state "running" in the database, then to the READY line
               through GET /api/v1/instances/<id>/console. Deleted through the API.

The base image is cached on the host before the first timed run, and one untimed warm-up run
of each path starts the network and fills caches. Runs alternate raw / control plane.
Everything is private: host bench-local, storage under /var/tmp/andromede-bench-*, guest
networks on /27s of the documentation ranges that no libvirt network uses. Domains, pools
and volumes of host bench-local, and the andr-t-* networks this run created, are removed
at the end, also on failure. The broker is CELERY_BROKER_URL (default
redis://127.0.0.1:6379/9); the queue is host.bench-local.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _setup

HOST = "bench-local"
ZONE = "bench-local-fr"
TENANT = "bprov-acme"
FLAVOR = "bprov-tiny"
RAW_NETWORK = "andr-t-benchraw"
RAW_BRIDGE = "andrbrbenchraw"  # 14 characters
URI = "qemu:///system"
GIB = 1024**3
READY = "ANDROMEDE-READY instance-id={}"
TARGET_RATIO = 1.20


class RunFailed(Exception):
    pass


_INSTANCES = (
    "(SELECT id FROM compute_instance WHERE tenant_id IN "
    "(SELECT id FROM tenants_tenant WHERE slug = %(tenant)s) "
    "OR host_id IN (SELECT id FROM compute_host WHERE name = %(host)s))"
)
_TENANT = "SELECT id FROM tenants_tenant WHERE slug = %(tenant)s"
_RESET = (
    *_setup.network_reset_sql(_TENANT),
    "DELETE FROM compute_allocation WHERE instance_id IN " + _INSTANCES,  # noqa: S608
    "DELETE FROM compute_instance WHERE id IN " + _INSTANCES,  # noqa: S608
    "DELETE FROM compute_operation WHERE host_name = %(host)s OR tenant_id IN "
    "(SELECT id FROM tenants_tenant WHERE slug = %(tenant)s)",
    "DELETE FROM compute_storagepool WHERE host_id IN "
    "(SELECT id FROM compute_host WHERE name = %(host)s)",
    "DELETE FROM compute_host WHERE name = %(host)s",
)


def reset_rows() -> None:
    """This benchmark's rows from a previous run (the database is the bench one)."""
    for statement in _RESET:
        _setup.execute(statement, {"tenant": TENANT, "host": HOST})


def libvirt_subnets(conn: Any) -> list[ipaddress.IPv4Network]:
    from lxml import etree

    used = []
    for net in conn.listAllNetworks():
        ip = etree.fromstring(net.XMLDesc(0).encode()).find("ip")
        if ip is not None and ip.get("address"):
            prefix = ip.get("prefix") or "24"
            used.append(ipaddress.ip_interface(f"{ip.get('address')}/{prefix}").network)
    return [n for n in used if isinstance(n, ipaddress.IPv4Network)]


def free_subnets(conn: Any, count: int) -> list[str]:
    """`count` /27s of the documentation ranges, from the top, that no libvirt network uses
    and no other tenant network of the bench database holds."""
    from django.conf import settings

    from network.models import Subnet

    used = libvirt_subnets(conn)
    taken = set(
        Subnet.objects.filter(network__is_default=True)
        .exclude(tenant__slug=TENANT)
        .values_list("cidr", flat=True)
    )
    found = []
    every = [
        str(cidr)
        for supernet in settings.TENANT_NETWORK_SUPERNETS
        for cidr in ipaddress.ip_network(supernet).subnets(new_prefix=27)
    ]
    for cidr in reversed(every):
        net = ipaddress.IPv4Network(cidr)
        if cidr not in taken and not any(net.overlaps(u) for u in used):
            found.append(cidr)
            if len(found) == count:
                return found
    raise SystemExit("no free /27 in the documentation ranges on this libvirtd")


def wait(check: Any, deadline: float, what: str, interval: float) -> Any:
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RunFailed(f"timed out waiting for {what}")
        time.sleep(interval)


class Lab:
    def __init__(
        self, root: Path, host: Any, image: Any, raw_cidr: str, raw_same_ip: bool = False
    ) -> None:
        from hosts.hypervisors import hypervisor_for
        from hosts.naming import storage_pool as pool_name

        self.root = root
        self.host = host
        self.image = image
        self.hv = hypervisor_for(host)
        self.pools = {role: pool_name(HOST, role) for role in ("images", "instances")}
        self.raw_net = ipaddress.IPv4Network(raw_cidr)
        self.raw_hosts = list(self.raw_net.hosts())
        self.raw_same_ip = raw_same_ip

    # --- raw driver path ---------------------------------------------------------------------

    def raw(self, index: int, deadline_s: float) -> dict[str, Any]:
        from compute import cloudinit
        from hosts.naming import cached_image as base_volume
        from hypervisor.base import (
            DiskSpec,
            DomainSpec,
            NetworkSpec,
            NicSpec,
            PowerState,
            StaticLease,
            StorageVolumeSpec,
        )
        from network.host_specs import GuestInterface

        name = str(uuid.uuid4())
        root_vol, seed_vol = f"raw-{name}-root", f"raw-{name}-seed"
        mac = f"52:54:00:be:00:{index % 256:02x}"
        # Like the IPAM (lowest free address) with --raw-same-ip; else a new address each run.
        ip = str(self.raw_hosts[1 if self.raw_same_ip else 1 + index % (len(self.raw_hosts) - 1)])
        hv, pools, image = self.hv, self.pools, self.image
        deadline = time.monotonic() + deadline_s
        steps: dict[str, float] = {}
        t0 = mark = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            steps[step] = round(now - mark, 3)
            mark = now

        try:
            hv.create_storage_volume(
                StorageVolumeSpec(
                    pool=pools["instances"], name=root_vol,
                    capacity_bytes=max(GIB, image.virtual_size_bytes or 0), format="qcow2",
                    backing_pool=pools["images"], backing_volume=base_volume(image.pk),
                    backing_format=image.disk_format,
                )
            )  # fmt: skip
            lap("root_disk")
            seed = cloudinit.build_iso(
                cloudinit.Seed(
                    instance_id=name, hostname=f"raw-{index}",
                    interfaces=(GuestInterface(
                        mac=mac, address_cidr=f"{ip}/{self.raw_net.prefixlen}", gateway=None,
                        mtu=None,
                    ),),
                    user_data="#cloud-config\n",
                )
            )  # fmt: skip
            hv.create_storage_volume(
                StorageVolumeSpec(pool=pools["instances"], name=seed_vol, capacity_bytes=len(seed),
                           format="raw")
            )  # fmt: skip
            import io

            hv.upload_storage_volume(pools["instances"], seed_vol, io.BytesIO(seed), len(seed))
            lap("seed")
            hv.ensure_network(
                NetworkSpec(
                    name=RAW_NETWORK, bridge=RAW_BRIDGE,
                    gateway_cidr=f"{self.raw_hosts[0]}/{self.raw_net.prefixlen}",
                    leases=(StaticLease(mac=mac, ip=ip, hostname=f"raw-{index}"),),
                )
            )  # fmt: skip
            lap("network")
            hv.define_domain(
                DomainSpec(
                    name=name, title=f"raw-{index}", tenant_id="bench", instance_id=name,
                    vcpus=1, memory_mb=256,
                    disks=(
                        DiskSpec(pool=pools["instances"], volume=root_vol, target="vda"),
                        DiskSpec(pool=pools["instances"], volume=seed_vol, target="sda",
                                 device="cdrom", bus="virtio", format="raw", readonly=True),
                    ),
                    nics=(NicSpec(network=RAW_NETWORK, mac=mac),),
                    domain_type=self.host.domain_type,
                    console_log=f"{self.host.storage_root}/instances/raw-{name}-console.log",
                )
            )  # fmt: skip
            lap("define")
            hv.start_domain(name)
            wait(
                lambda: hv.domain_info(name).power_state == PowerState.RUNNING,
                deadline, "raw domain running", 0.05,
            )  # fmt: skip
            t_running = time.perf_counter()
            lap("start")
            wait(
                lambda: READY.format(name) in hv.console_output(name),
                deadline, "raw ready line", 0.2,
            )  # fmt: skip
            t_ready = time.perf_counter()
        finally:
            hv.destroy_domain(name)
            hv.undefine_domain(name)
            for volume in (root_vol, seed_vol, f"raw-{name}-console.log"):
                try:
                    hv.delete_storage_volume(pools["instances"], volume, wipe=False)
                except Exception as exc:  # a console log libvirt has not seen yet
                    print(f"  (cleanup of {volume}: {exc})")
        return {"running": t_running - t0, "ready": t_ready - t0, "steps": steps}

    # --- control plane path ------------------------------------------------------------------

    def control_plane(self, client: Any, index: int, deadline_s: float) -> dict[str, Any]:
        from compute.models import Instance
        from operations.models import Operation

        deadline = time.monotonic() + deadline_s
        body = {"name": f"cp-{index}", "flavor": FLAVOR, "image": str(self.image.pk),
                "user_data": "#cloud-config\n", "zone": ZONE}  # fmt: skip
        t0 = time.perf_counter()
        answer = client.post("/api/v1/instances", body, format="json")
        t_accepted = time.perf_counter()
        if answer.status_code != 202:
            raise RunFailed(f"POST answered {answer.status_code}: {answer.content[:500]!r}")
        iid = answer.json()["instance"]["id"]
        try:

            def running() -> bool:
                status, power = Instance.objects.values_list("status", "power_state").get(pk=iid)
                if status == Instance.Status.ERROR:
                    fault = Instance.objects.get(pk=iid).fault
                    raise RunFailed(f"instance {iid} went to error: {fault}")
                return power == "running"

            wait(running, deadline, "instance running in the database", 0.05)
            t_running = time.perf_counter()
            url = f"/api/v1/instances/{iid}/console"
            wait(
                lambda: READY.format(iid) in client.get(url).json()["output"],
                deadline, "ready line through the API", 0.2,
            )  # fmt: skip
            t_ready = time.perf_counter()
            op = Operation.objects.get(target_id=iid, action="instance.create")
        finally:
            self._delete(client, iid)
        queued = (op.started_at - op.created_at).total_seconds() if op.started_at else 0.0
        return {
            "accepted": t_accepted - t0,
            "running": t_running - t0,
            "ready": t_ready - t0,
            "queued": queued,
            "steps": {s["name"]: s["seconds"] for s in op.steps},
        }

    def _delete(self, client: Any, iid: str) -> None:
        from compute.models import Instance

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = Instance.objects.values_list("status", "task_state").get(pk=iid)
            if status[0] == Instance.Status.DELETED:
                return
            if status[1] is None and status[0] != Instance.Status.DELETING:
                answer = client.delete(f"/api/v1/instances/{iid}")
                if answer.status_code not in (202, 409):
                    print(f"  delete of {iid} answered {answer.status_code}")
            time.sleep(0.5)
        print(f"  instance {iid} not deleted in time; the final cleanup removes its domain")


def print_stats(label: str, values: list[float]) -> dict[str, float]:
    stats = _setup.summary(values)
    print(f"  {label:<34} {_setup.fmt(stats, 's')}")
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="K=2 runs")
    parser.add_argument("--runs", type=int, default=None, help="K timed runs per path (<= 10)")
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds per run, max")
    parser.add_argument(
        "--raw-same-ip",
        action="store_true",
        help="raw path: reuse one address with a new MAC each run, as the IPAM does",
    )
    args = parser.parse_args()
    runs = min(args.runs or (2 if args.small else 5), 10)

    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/9")
    _setup.setup_django()
    import libvirt
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from compute.worker.steps import cache_image
    from hosts.hypervisors import close_all
    from hosts.services import onboarding
    from iaas.celery import app, host_queue
    from images.models import Image
    from tests.support import hypervisor_lab

    started = time.monotonic()
    hypervisor_lab.ensure_libvirtd()
    image_path = hypervisor_lab.ensure_test_image()
    networks_before = _setup.libvirt_networks(URI)
    # A previous run's pools and domains.
    leftovers = _setup.remove_host_objects(HOST, networks_before, URI)
    if leftovers:
        print(f"removed leftovers of a previous run: {', '.join(leftovers)}")
    root = Path(tempfile.mkdtemp(prefix="andromede-bench-", dir="/var/tmp"))
    root.chmod(0o711)  # guests run as libvirt-qemu: their disks' path must be traversable
    settings.IMAGE_STORE_DIR = root / "image-store"
    settings.IMAGE_STORE_ZONE = ZONE  # the default image store lies in the bench's zone
    settings.INSTANCE_BOOT_TIMEOUT_SECONDS = 120
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    raw_results: list[dict[str, Any]] = []
    cp_results: list[dict[str, Any]] = []
    try:
        reset_rows()
        conn = libvirt.open(URI)
        tenant_cidr, raw_cidr = free_subnets(conn, 2)
        conn.close()
        zone = _setup.ensure_zone(ZONE, "FR")
        host = onboarding.host_onboard(
            actor=_setup.system_actor(),
            registration=onboarding.HostRegistration(
                name=HOST, zone=zone, libvirt_uri=URI, storage_root=str(root), domain_type="qemu"
            ),
        )
        print(f"host {HOST}: {host.cpus} CPUs, {host.memory_mb} MiB, domain type "
              f"{host.domain_type}, libvirt {host.libvirt_version}, storage {root}")  # fmt: skip
        Image.objects.filter(name="andromede-test").update(status="deleted")
        call_command(
            "image_import", "andromede-test", str(image_path), "--disk-format", "qcow2",
            "--public", verbosity=0,
        )  # fmt: skip
        image = Image.objects.get(name="andromede-test", status="active")
        _setup.ensure_flavor(FLAVOR, 1, 256, 1)
        tenant = _setup.ensure_tenant(TENANT, ["FR"])
        _setup.make_subnet(tenant, tenant_cidr, default=True)
        print(f"guest networks: control plane {tenant_cidr}, raw {raw_cidr}")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {_setup.api_token(tenant, 'bprov-m')}")
        lab = Lab(root, host, image, raw_cidr, args.raw_same_ip)
        t = time.perf_counter()
        cache_image(lab.hv, host, image)
        print(f"base image cached on the host in {time.perf_counter() - t:.2f} s")

        with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
            print("warm-up (untimed): one run of each path")
            lab.raw(255, args.deadline)
            lab.control_plane(client, 0, args.deadline)
            for i in range(1, runs + 1):
                raw = lab.raw(i, args.deadline)
                raw_results.append(raw)
                cp = lab.control_plane(client, i, args.deadline)
                cp_results.append(cp)
                print(f"run {i}: raw running {raw['running']:.2f} s ready {raw['ready']:.2f} s "
                      f"(steps {raw['steps']}) | "
                      f"control plane running {cp['running']:.2f} s ready {cp['ready']:.2f} s "
                      f"(POST {cp['accepted'] * 1000:.0f} ms, queued {cp['queued']:.2f} s, "
                      f"steps {cp['steps']})")  # fmt: skip
    finally:
        from compute.models import Instance

        reset_ok = not Instance.objects.filter(host__name=HOST).exclude(status="deleted").exists()
        close_all()
        removed = _setup.remove_host_objects(HOST, networks_before, URI)
        shutil.rmtree(root, ignore_errors=True)
        print(f"cleanup: {len(removed)} libvirt objects removed ({', '.join(removed)}); "
              f"{root} deleted; all instances deleted through the API: {reset_ok}")  # fmt: skip
        reset_rows()

    print(f"\n=== {len(raw_results)} timed runs per path ===")
    raw_run = print_stats("raw: start → running", [r["running"] for r in raw_results])
    raw_ready = print_stats("raw: start → ready line", [r["ready"] for r in raw_results])
    cp_run = print_stats("API: POST → running (DB)", [r["running"] for r in cp_results])
    cp_ready = print_stats("API: POST → ready line (GET console)", [r["ready"] for r in cp_results])
    print_stats("API: POST answered (202)", [r["accepted"] for r in cp_results])
    print_stats("API: operation queued → leased", [r["queued"] for r in cp_results])
    for step in raw_results[0]["steps"]:
        print_stats(f"raw: step {step}", [r["steps"].get(step, 0.0) for r in raw_results])
    for step in cp_results[0]["steps"]:
        print_stats(f"API: step {step}", [r["steps"].get(step, 0.0) for r in cp_results])
    for label, a, b in (("running", cp_run, raw_run), ("ready line", cp_ready, raw_ready)):
        print(f"ratio control plane / raw, {label}: p50 x{a['p50'] / b['p50']:.2f}, "
              f"p95 x{a['p95'] / b['p95']:.2f}")  # fmt: skip
    ratio = cp_run["p50"] / raw_run["p50"]
    print(f"target: control plane adds at most 20 % at p50 (to running): "
          f"{'MET' if ratio <= TARGET_RATIO else 'NOT MET'} (x{ratio:.2f}); "
          f"to the ready line x{cp_ready['p50'] / raw_ready['p50']:.2f}")  # fmt: skip
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
