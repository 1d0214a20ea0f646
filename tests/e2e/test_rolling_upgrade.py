"""A rolling upgrade (docs/upgrades.md): a worker of the previous release keeps working while
the database is migrated to this tree, then works beside a worker of this tree.

The previous release is the newest one in pyproject.toml (`[tool.andromede] releases`); its
source is taken out of git (tests/support/releases.py) and run with this virtualenv. Both
releases share a throwaway PostgreSQL database, a private Redis and this machine's real
libvirtd, onboarded as a host of a private name: the operations are volume creates and deletes,
which exercise the outbox, the lease, the host's queue and real storage, with no guest to boot.

Every step runs in its own process, as it does in production: the previous release's `migrate`,
its worker and its API-side writes (a service call, as its API makes one), this tree's
`migrate` while the old worker runs, then this tree's worker and writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import hypervisor_lab
from tests.support.databases import database_url, throwaway_database
from tests.support.fault_lab import PrivateRedis, stop_process, wait_for
from tests.support.hypervisor_lanes import run_token
from tests.support.local_host import _network_names, _remove_leftovers
from tests.support.releases import ROOT, extract, previous_release

pytestmark = pytest.mark.hypervisor

#: What the previous release and this tree run as their "API" (the same service calls the API
#: makes), written against names both releases have: tests.factories, the services.
SCRIPT = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iaas.settings")
django.setup()
from hosts.models import Host
from hosts.services import onboarding, zones
from tests import factories
from tenants.models import Tenant
from volumes.models import Volume, VolumeType
from volumes.services import volumes as volume_services

command, *args = sys.argv[1:]
if command == "seed":
    host_name, storage_root = args
    zone = zones.zone_create(
        actor=factories.SYSTEM, region="fr-upg", name="fr-upg-1", site="lab", city="Paris",
        country="FR", jurisdiction="FR",
    )
    onboarding.host_onboard(
        actor=factories.SYSTEM,
        registration=onboarding.HostRegistration(
            name=host_name, zone=zone, libvirt_uri="qemu:///system",
            storage_root=storage_root, domain_type="qemu",
        ),
    )
    factories.tenant("acme")
    factories.volume_type("standard", max_size_gb=10)
    print(json.dumps({}))
elif command == "create":
    volume, operation = factories.volume(
        Tenant.objects.get(slug="acme"), volume_type=VolumeType.objects.get(name="standard"),
        name=args[0],
    )
    print(json.dumps({"operation": str(operation.pk)}))
elif command == "delete":
    operation = volume_services.volume_delete(
        actor=factories.SYSTEM, volume=Volume.objects.get(name=args[0], status="available")
    )
    print(json.dumps({"operation": str(operation.pk)}))
"""


@pytest.fixture
def database() -> Iterator[str]:
    """The DATABASE_URL of an empty database of this test's own, dropped afterwards."""
    with throwaway_database("upgrade") as name:
        yield database_url(name)


class Release:
    """One release's tree, run in subprocesses against the shared database and broker."""

    def __init__(self, name: str, tree: Path, env: dict[str, str], logs: Path) -> None:
        self.name, self.tree, self.logs = name, tree, logs
        self.env = env | {"PYTHONPATH": str(tree), "ANDROMEDE_VAR_DIR": str(logs / name)}

    def manage(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(self.tree / "manage.py"), *argv], cwd=self.tree, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def run(self, *argv: str, script: bool = False, timeout: float = 180) -> str:
        command = [sys.executable, "-c", SCRIPT, *argv] if script else [
            sys.executable, str(self.tree / "manage.py"), *argv]  # fmt: skip
        done = subprocess.run(
            command, cwd=self.tree, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{self.name}: {argv} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def create(self, volume: str) -> str:
        return str(json.loads(self.run("create", volume, script=True))["operation"])

    def delete(self, volume: str) -> str:
        return str(json.loads(self.run("delete", volume, script=True))["operation"])

    def worker(self, queue: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{self.name}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "iaas", "worker", "-Q", queue,
             "--pool", "solo", "--loglevel", "INFO", "--without-heartbeat",
             "--without-gossip", "--without-mingle", "--hostname", f"upgrade-{self.name}@%h"],
            cwd=self.tree, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _operation(database_url: str, operation_id: str) -> tuple[str, str]:
    """(status, the process id of the worker that leased it) of an operation, read straight
    from the database (a lease is held by `host:pid`)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, split_part(lease_owner, ':', 2) FROM compute_operation WHERE id = %s",
            (operation_id,),
        ).fetchone()
    assert row is not None, operation_id
    return str(row[0]), str(row[1])


def _finished(database_url: str, operation_id: str, timeout: float = 60) -> int:
    """Waits for the operation to end; fails unless it succeeded. The pid of the worker that
    ran it."""
    status = wait_for(
        lambda: (s := _operation(database_url, operation_id))[0] in ("succeeded", "failed") and s,
        timeout, f"operation {operation_id} to finish", every=0.2,
    )  # fmt: skip
    assert status[0] == "succeeded", status
    return int(status[1])


def _volume_files(storage_root: Path) -> list[str]:
    return sorted(p.name for p in storage_root.rglob("*") if p.is_file())


def test_a_worker_of_the_previous_release_keeps_working_while_the_database_is_migrated(
    database: str, tmp_path: Path
) -> None:
    hypervisor_lab.ensure_libvirtd()
    release = previous_release()
    old_tree = extract(release, tmp_path / "previous")
    host_name = f"upg-{run_token()}"
    storage_root = Path(tempfile.mkdtemp(prefix=f"andromede-{host_name}-", dir="/var/tmp"))
    storage_root.chmod(0o711)
    networks_before = _network_names()
    redis = PrivateRedis(tmp_path)
    redis.start()
    base = os.environ | {"DATABASE_URL": database, "CELERY_BROKER_URL": redis.url,
                         "DJANGO_SETTINGS_MODULE": "iaas.settings"}  # fmt: skip
    base.pop("DJANGO_DEBUG", None)
    old = Release(release.version, old_tree, base, tmp_path)
    new = Release("this-tree", ROOT, base, tmp_path)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        old.run("migrate", "--no-input")
        old.run("seed", host_name, str(storage_root), script=True)
        queue = f"host.{host_name}"
        old_worker = old.worker(queue)
        workers.append(old_worker)
        assert _finished(database, old.create("before")) == old_worker.pid

        # This tree's migrations run while the old worker works and the old API writes.
        migrate = new.manage("migrate", "--no-input")
        during = old.create("during")
        out, _ = migrate.communicate(timeout=180)
        assert migrate.returncode == 0, out
        assert _finished(database, during) == old_worker.pid
        assert _finished(database, old.create("after")) == old_worker.pid

        # Both releases' workers side by side on the host's queue, then the old one leaves.
        new_worker = new.worker(queue)
        workers.append(new_worker)
        ran_by = {_finished(database, new.create(f"new-{n}")) for n in range(4)}
        assert ran_by <= {old_worker.pid, new_worker.pid}, ran_by
        stop_process(old_worker)
        for name in ("before", "during", "after", "new-0", "new-1", "new-2", "new-3"):
            assert _finished(database, new.delete(name)) == new_worker.pid
        assert _volume_files(storage_root) == []
        assert "audit chain OK" in new.run("audit_verify")
    finally:
        for worker in workers:
            stop_process(worker)
        redis.stop()
        _remove_leftovers(host_name, networks_before)
        shutil.rmtree(storage_root, ignore_errors=True)
