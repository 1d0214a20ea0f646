"""The restore drill (issue 13 item 4), with the real tools: scripts/backup.sh (pg_dump -Fc,
the image store copied with its checksums, the manifest), the database then lost, and
scripts/restore.sh (checksums checked, pg_restore into a new database, restore_finish).

What an operator checks after a restore: the reconciler finds the host (libvirt's fake
hypervisor, in this process) and the restored database agree; `audit_verify
--require-checkpoint` passes (a signed restore checkpoint supersedes the checkpoints signed
after the backup), while cutting the restored chain's tail is still detected; the tenant
shredded after the backup stays unreadable (the shred ledger); the image files are back with
their SHA-256. The database the tests run on is the production one here: it is dumped, and
the restore goes to a scratch database this test creates and drops."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from compute.models import Instance
from compute.services.backups import restore_finish
from compute.services.reconciler import reconcile_all
from hosts.models import OrphanReport
from iaas.audit import Actor, audit_record
from iaas.audit.checkpoints import checkpoint_write
from images.services.images import image_file_path
from tests.compute.test_reconciler import built
from tests.iaas.test_audit_anchoring import as_owner
from tests.support.databases import throwaway_database
from tests.volumes.test_volume_encryption import encrypted_volume, shred, vcloud
from volumes import crypto
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump must see the data committed
__all__ = ["vcloud"]  # the fixture, imported to be used here
ROOT = Path(__file__).resolve().parents[2]


def database_url(name: str) -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{name}"


def script(name: str, *args: str, database: str, fails: bool = False) -> str:
    """scripts/<name> with the control plane's environment (this test's settings); its
    output. It must succeed (or, with `fails`, exit 1)."""
    env = os.environ | {
        "DATABASE_URL": database_url(database),
        "DATABASE_MIGRATE_URL": "",  # one role here: the test database's owner
        "DJANGO_SETTINGS_MODULE": "iaas.settings",
        "PYTHONPATH": str(ROOT),
        "ANDROMEDE_AUDIT_SIGNING_KEY": str(settings.AUDIT_SIGNING_KEY),
        "ANDROMEDE_AUDIT_CHECKPOINT_FILE": str(settings.AUDIT_CHECKPOINT_FILE),
        "ANDROMEDE_SHRED_LEDGER_FILE": str(settings.SHRED_LEDGER_FILE),
        "ANDROMEDE_VOLUME_MASTER_KEY_FILE": str(settings.VOLUME_MASTER_KEY_FILE),
        "ANDROMEDE_IMAGE_STORE_DIR": str(settings.IMAGE_STORE_DIR),
        "ANDROMEDE_IMAGE_STORE_ZONE": settings.IMAGE_STORE_ZONE,
    }
    done = subprocess.run(
        [str(ROOT / "scripts" / name), *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == (1 if fails else 0), f"{name}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """A new, empty database on the same server, dropped afterwards whatever happened."""
    with throwaway_database("drill") as name:
        yield name


@pytest.fixture
def on_database() -> Iterator[object]:
    """on_database(name): this process's connection moved to another database (back after)."""
    original = connection.settings_dict["NAME"]

    def move(name: str) -> None:
        connection.close()
        connection.settings_dict["NAME"] = name

    yield move
    move(original)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def world(vcloud: SimpleNamespace, make_tenant, make_caller) -> SimpleNamespace:
    """An instance running on the host, an encrypted volume of acme and one of globex."""
    instance = built(vcloud)
    acme_volume = encrypted_volume(vcloud)
    globex = make_tenant("globex")
    other = SimpleNamespace(client=make_caller(globex, "member").client())
    globex_volume = encrypted_volume(other, "ledger")
    reconcile_all()  # whatever the fake hypervisor holds besides is reported before the backup
    return SimpleNamespace(instance=instance, acme=acme_volume, globex=globex_volume)


def test_backup_destroy_restore(
    vcloud, make_tenant, make_caller, tmp_path, scratch_database, on_database
):
    seen = world(vcloud, make_tenant, make_caller)
    image_file = image_file_path(vcloud.image)
    image_sha = sha256(image_file)
    assert checkpoint_write() is not None  # checkpoint #1, before the backup

    backup = tmp_path / "backup"
    script("backup.sh", str(backup), database=connection.settings_dict["NAME"])
    manifest = json.loads((backup / "manifest.json").read_text())
    assert stat_mode(backup) == 0o700
    assert manifest["database"]["sha256"] == sha256(backup / "database.dump")
    (store,) = manifest["image_stores"]
    held = {f["relative"]: f["sha256"] for f in store["files"]}
    assert held[str(vcloud.image.pk)] == image_sha == vcloud.image.checksum_sha256
    assert set(manifest["not_included"]) >= {"volume_master_key", "audit_signing_key"}
    master_key = Path(settings.VOLUME_MASTER_KEY_FILE).read_bytes().strip()
    assert not any(master_key in p.read_bytes() for p in backup.rglob("*") if p.is_file())
    head = manifest["audit_chain_head"]

    # After the backup: acme is shredded, life goes on and is anchored (checkpoint #2).
    shred("acme")
    audit_record(actor=Actor.system("tests"), action="test.after_backup")
    assert checkpoint_write() is not None
    # Then the disaster: the database and the image store are lost.
    shutil.rmtree(settings.IMAGE_STORE_DIR)
    # A damaged backup is refused before anything is touched.
    copy = backup / held_path(manifest, str(vcloud.image.pk))
    original = copy.read_bytes()
    copy.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    damaged = script("restore.sh", str(backup), database=scratch_database, fails=True)
    assert f"{held_path(manifest, str(vcloud.image.pk))}: FAILED" in damaged
    assert "nothing was restored" in damaged  # and the next restore finds the database empty
    copy.write_bytes(original)
    out = script("restore.sh", "--no-reconcile", str(backup), database=scratch_database)
    assert "restore checkpoint #3 signed; checkpoints #2 to #2 superseded" in out
    assert "tenant acme: shred re-applied, key version(s) [1]" in out
    assert "1 image file(s) put back" in out

    on_database(scratch_database)
    assert sha256(image_file) == image_sha
    # The reconciler's first round after the restore (restore_finish run again: it is safe
    # to, and reconciles): the hosts and the restored database agree, nothing to correct.
    report = restore_finish(backup / "manifest.json", reconcile=True)
    assert report.checkpoint_seq == 0  # already signed by the run above
    assert report.reconciled is not None
    assert report.reconciled["host_usage_corrected"] == []
    assert report.reconciled["hosts"] == {
        vcloud.host.name: {"drift": 0, "missing": 0, "orphans": 0, "volumes_removed": 0}
    }
    assert Instance.objects.get(pk=seen.instance.pk).status == "active"
    assert not OrphanReport.objects.exclude(name="test").filter(host__name=vcloud.host.name)
    # The audit chain: verified, anchored on the restore checkpoint.
    verified = io.StringIO()
    call_command("audit_verify", "--require-checkpoint", stdout=verified)
    assert "restored: checkpoint #3" in verified.getvalue()
    assert f"restored the chain to event {head['event_id']}" in verified.getvalue()
    # acme stays shredded; globex's volume still opens.
    with pytest.raises(crypto.VolumeKeyShredded):
        crypto.volume_passphrase(Volume.objects.get(pk=seen.acme.pk))
    assert crypto.volume_passphrase(Volume.objects.get(pk=seen.globex.pk))
    # Cutting the restored chain's tail, with no restore checkpoint to say why: detected.
    as_owner(
        ("DELETE FROM iaas_auditevent WHERE id > %s", [head["event_id"]]),
        (
            "UPDATE iaas_auditchainhead SET last_event_id = %s, last_hash = %s",
            [head["event_id"], head["event_hash"]],
        ),
    )
    with pytest.raises(CommandError, match="events were removed"):
        call_command("audit_verify", "--require-checkpoint", stdout=io.StringIO())


def held_path(manifest: dict, relative: str) -> str:
    (store,) = manifest["image_stores"]
    return next(f["path"] for f in store["files"] if f["relative"] == relative)


@pytest.mark.django_db  # no pg_dump here: a plain test database
def test_after_a_point_in_time_recovery_the_restore_checkpoint_names_the_target():
    """PostgreSQL replayed WAL up to a point: the chain ends there, behind the checkpoints
    signed since; `restore_finish --point-in-time` signs the head as it is."""
    events = [audit_record(actor=Actor.system("tests"), action=f"test.{i}") for i in range(4)]
    checkpoint_write()
    audit_record(actor=Actor.system("tests"), action="test.later")
    checkpoint_write()
    kept = events[-1]
    as_owner(
        ("DELETE FROM iaas_auditevent WHERE id > %s", [kept.id]),
        ("UPDATE iaas_auditchainhead SET last_event_id = %s, last_hash = %s", [kept.id, kept.hash]),
    )
    out = io.StringIO()
    call_command("restore_finish", "--point-in-time", "2026-12-03 10:00:00+00",
                 "--no-reconcile", stdout=out)  # fmt: skip
    assert "restore checkpoint #3 signed; checkpoints #2 to #2 superseded" in out.getvalue()
    verified = io.StringIO()
    call_command("audit_verify", "--require-checkpoint", stdout=verified)
    assert "from the backup of 2026-12-03 10:00:00+00" in verified.getvalue()


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
