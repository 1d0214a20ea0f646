"""`manage.py volume_master_key_rotate`: every live tenant key is re-wrapped by a new master
key; the volumes' data keys (their LUKS passphrases) come out the same, the old key opens
nothing any more, a shredded key stays destroyed, an interrupted rotation finishes when run
again, and a key wrapped by an unknown master key refuses the whole rotation unchanged."""

from __future__ import annotations

import base64
import secrets
from io import StringIO
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from iaas.audit import Actor
from iaas.models import AuditEvent
from tests import factories
from volumes import crypto
from volumes.models import TenantKey, Volume
from volumes.services.master_key import master_key_rotate
from volumes.services.shred import tenant_shred

pytestmark = pytest.mark.django_db


@pytest.fixture
def keyed(cloud: SimpleNamespace, make_tenant: Any) -> SimpleNamespace:
    """Two tenants with an encrypted volume each (their tenant keys made, wrapped by the
    test's master key file), and their passphrases as they are before any rotation."""
    secure = factories.volume_type("secure", max_size_gb=10, encrypted=True)
    other = make_tenant("other")
    volumes = [
        factories.available_volume(tenant, volume_type=secure, name="vault")
        for tenant in (cloud.tenant, other)
    ]
    cloud.volumes = volumes
    cloud.passphrases = [crypto.volume_passphrase(v) for v in volumes]
    cloud.other = other
    return cloud


def rotate(*args: str) -> str:
    out = StringIO()
    call_command("volume_master_key_rotate", *args, stdout=out)
    return out.getvalue()


def passphrases(volumes: list[Volume]) -> list[bytes]:
    return [crypto.volume_passphrase(Volume.objects.get(pk=v.pk)) for v in volumes]


def test_a_rotation_rewraps_every_tenant_key_and_the_old_key_opens_nothing(keyed, settings):
    old = crypto.master_key()
    key_file = settings.VOLUME_MASTER_KEY_FILE
    printed = rotate()

    new = crypto.master_key()
    assert new != old
    assert f"{crypto.key_id(old)} → {crypto.key_id(new)}: 2 tenant key(s)" in printed
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not key_file.with_name(key_file.name + ".next").exists()
    assert passphrases(keyed.volumes) == keyed.passphrases  # no volume changed
    for tenant_key in TenantKey.objects.all():
        assert tenant_key.master_key_id == crypto.key_id(new)
        with pytest.raises(crypto.VolumeKeyError):
            crypto.unwrap(old, bytes(tenant_key.wrapped_key), crypto._tenant_context(tenant_key))
    event = AuditEvent.objects.get(action="volume_master_key.rotate")
    assert event.details == {
        "from": crypto.key_id(old), "to": crypto.key_id(new), "tenant_keys": 2,
    }  # fmt: skip
    assert base64.b64encode(old).decode() not in printed
    assert base64.b64encode(new).decode() not in printed


def test_a_shredded_tenant_key_stays_destroyed(keyed):
    tenant_shred(actor=Actor.system("test"), tenant=keyed.other)
    destroyed = TenantKey.objects.get(tenant=keyed.other)
    rotate()
    assert TenantKey.objects.get(pk=destroyed.pk).wrapped_key == destroyed.wrapped_key
    assert passphrases(keyed.volumes[:1]) == keyed.passphrases[:1]
    with pytest.raises(crypto.VolumeKeyShredded):
        crypto.volume_passphrase(Volume.objects.get(pk=keyed.volumes[1].pk))


def test_an_interrupted_rotation_finishes_with_the_same_new_key(keyed, settings):
    """The tenant keys were re-wrapped but the new key never replaced the file (the process
    died in between): the configured key opens nothing until the command runs again."""
    key_file = settings.VOLUME_MASTER_KEY_FILE
    next_file = key_file.with_name(key_file.name + ".next")
    old, new = crypto.master_key(), crypto.new_master_key_file(next_file)
    assert master_key_rotate(actor=Actor.system("test"), old=old, new=new) == 2
    with pytest.raises(crypto.VolumeKeyError, match="wrapped by master key"):
        crypto.volume_passphrase(Volume.objects.get(pk=keyed.volumes[0].pk))

    printed = rotate()
    assert "0 tenant key(s)" in printed  # already re-wrapped: only the rename was left
    assert crypto.master_key() == new
    assert passphrases(keyed.volumes) == keyed.passphrases


def test_a_key_wrapped_by_an_unknown_master_key_refuses_the_rotation_unchanged(keyed, settings):
    stranger = secrets.token_bytes(32)
    foreign = TenantKey.objects.get(tenant=keyed.other)
    TenantKey.objects.filter(pk=foreign.pk).update(master_key_id=crypto.key_id(stranger))
    key_file = settings.VOLUME_MASTER_KEY_FILE
    before_file = key_file.read_bytes()
    before_rows = sorted(
        (k.pk, bytes(k.wrapped_key), k.master_key_id) for k in TenantKey.objects.all()
    )

    with pytest.raises(CommandError, match=r"Refused, nothing changed: .*neither"):
        rotate()
    assert key_file.read_bytes() == before_file
    assert not key_file.with_name(key_file.name + ".next").exists()  # the new key made: gone
    after_rows = sorted(
        (k.pk, bytes(k.wrapped_key), k.master_key_id) for k in TenantKey.objects.all()
    )
    assert after_rows == before_rows
    assert not AuditEvent.objects.filter(action="volume_master_key.rotate").exists()


def test_a_key_from_the_environment_needs_a_file_for_the_new_one(keyed, settings, tmp_path):
    settings.VOLUME_MASTER_KEY = settings.VOLUME_MASTER_KEY_FILE.read_text().strip()
    with pytest.raises(CommandError, match="--new-key-file"):
        rotate()
    assert passphrases(keyed.volumes) == keyed.passphrases  # nothing changed

    target = tmp_path / "new-master.key"
    printed = rotate("--new-key-file", str(target))
    assert "Now set ANDROMEDE_VOLUME_MASTER_KEY" in printed
    assert target.stat().st_mode & 0o777 == 0o600
    settings.VOLUME_MASTER_KEY = target.read_text().strip()  # the operator's restart
    assert passphrases(keyed.volumes) == keyed.passphrases
