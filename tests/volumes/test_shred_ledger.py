"""The shred ledger (volumes.services.shred_ledger): each shred written down outside the
database, so a database restored from before it has the keys destroyed again."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError

from iaas.audit import Actor
from iaas.models import AuditEvent
from tests.volumes.test_volume_encryption import encrypted_volume, shred, vcloud
from volumes import crypto
from volumes.models import TenantKey, Volume
from volumes.services.shred import shred_ledger_reapply

pytestmark = pytest.mark.django_db
__all__ = ["vcloud"]  # the fixture, imported to be used here
RESTORE = Actor.system("tests: restore_finish")


def test_a_shred_is_written_to_the_ledger_before_it_commits(vcloud, caplog):
    volume = encrypted_volume(vcloud)
    key = TenantKey.objects.get(tenant=vcloud.tenant)
    shred("acme")
    (logged,) = [r for r in caplog.records if r.name == "volumes.services.shred_ledger"]
    ledger = Path(settings.SHRED_LEDGER_FILE)
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    (line,) = ledger.read_text().splitlines()
    entry = json.loads(line)
    assert (entry["tenant_id"], entry["tenant_slug"]) == (str(vcloud.tenant.pk), "acme")
    assert (entry["key_ids"], entry["key_versions"]) == ([str(key.pk)], [1])
    assert "wrapped" not in line  # ids, never key material
    assert logged.shred_ledger == line  # a copy for the log host
    shred("acme")  # nothing left to destroy: no second line
    assert len(ledger.read_text().splitlines()) == 1
    assert shred_ledger_reapply(actor=RESTORE) == []  # the live database: nothing to redo
    with pytest.raises(crypto.VolumeKeyShredded):
        crypto.volume_passphrase(Volume.objects.get(pk=volume.pk))


def test_keys_a_restore_brought_back_are_destroyed_again(vcloud):
    volume = encrypted_volume(vcloud)
    passphrase = crypto.volume_passphrase(volume)
    key = TenantKey.objects.get(tenant=vcloud.tenant)
    older = (bytes(key.wrapped_key), bytes(volume.wrapped_key or b""))
    shred("acme")
    # A dump taken before the shred, restored: the key rows as they were.
    TenantKey.objects.filter(pk=key.pk).update(wrapped_key=older[0], destroyed_at=None)
    Volume.objects.filter(pk=volume.pk).update(wrapped_key=older[1], key_shredded_at=None, fault="")
    assert crypto.volume_passphrase(Volume.objects.get(pk=volume.pk)) == passphrase  # the risk
    ((tenant, outcome),) = shred_ledger_reapply(actor=RESTORE)
    assert (tenant.slug, outcome.key_versions, outcome.volume_ids) == ("acme", [1], [volume.pk])
    with pytest.raises(crypto.VolumeKeyShredded):
        crypto.volume_passphrase(Volume.objects.get(pk=volume.pk))
    assert TenantKey.objects.get(pk=key.pk).wrapped_key in (b"", memoryview(b""))
    event = AuditEvent.objects.filter(action="tenant.shred_reapplied").get()
    assert event.details["key_versions_destroyed"] == [1]


def test_a_shred_that_cannot_be_written_to_the_ledger_is_refused(vcloud, settings, tmp_path):
    volume = encrypted_volume(vcloud)
    settings.SHRED_LEDGER_FILE = tmp_path  # a directory: cannot be appended to
    with pytest.raises(CommandError, match="cannot append to the shred ledger"):
        shred("acme")
    assert TenantKey.objects.get(tenant=vcloud.tenant).destroyed_at is None
    assert crypto.volume_passphrase(Volume.objects.get(pk=volume.pk))
