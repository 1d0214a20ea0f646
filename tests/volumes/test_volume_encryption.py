"""Encrypted volumes and crypto-shredding on libvirt's fake hypervisor (issue 11 item 7):
the key hierarchy (master key from the configuration → tenant key → a data key per volume),
what the database holds of it, and `manage.py tenant_shred`. The fake has no secrets and
holds no data: a real LUKS volume, its secret on a real host and a guest writing through it
are tests/e2e/test_volume_encryption.py."""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils.dateparse import parse_datetime

from hosts import naming
from hypervisor.libvirt import LibvirtHypervisor, domain_xml
from iaas.models import AuditEvent
from operations.models import Operation
from operations.worker import run_operation
from tests import factories
from tests.support.api_checks import assert_error, business_rows, last_event_id
from tests.support.instance_api import active_instance
from volumes import crypto
from volumes.models import TenantKey, Volume, VolumeAttachment
from volumes.selectors import attachments_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def vcloud(cloud: SimpleNamespace) -> SimpleNamespace:
    """The `cloud` (tests/conftest.py) with the default type `standard` and `secure`,
    an encrypted type."""
    cloud.standard = factories.volume_type("standard", max_size_gb=100)
    cloud.secure = factories.volume_type("secure", max_size_gb=100, encrypted=True)
    return cloud


@pytest.fixture
def plugs(monkeypatch: pytest.MonkeyPatch) -> None:
    """libvirt's fake cannot attach devices (Unsupported): the attach is taken as done, so
    states, attachments and the shred's refusal can be seen (as tests/volumes/
    test_volume_attach.py does)."""
    monkeypatch.setattr(LibvirtHypervisor, "attach_disk", lambda self, name, disk: None)


def encrypted_volume(cloud: SimpleNamespace, name: str = "vault") -> Volume:
    answer = cloud.client.post(
        "/api/v1/volumes", {"name": name, "size_gb": 2, "volume_type": "secure"}, format="json"
    )
    assert answer.status_code == 202, answer.content
    assert run_operation(answer.json()["operation"]["id"]) == "succeeded"
    return Volume.objects.get(pk=answer.json()["volume"]["id"])


def attach(cloud: SimpleNamespace, instance_id: str, volume: Volume) -> Any:
    return cloud.client.post(
        f"/api/v1/instances/{instance_id}/volumes", {"volume": str(volume.pk)}, format="json"
    )


def shred(slug: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("tenant_shred", slug, stdout=out, stderr=out)
    return out.getvalue()


def test_an_encrypted_volume_gets_a_data_key_wrapped_by_its_tenants_key(vcloud):
    first, second = encrypted_volume(vcloud, "a"), encrypted_volume(vcloud, "b")

    shown = vcloud.client.get(f"/api/v1/volumes/{first.pk}").json()
    assert (shown["status"], shown["volume_type"], shown["encrypted"]) == (
        "available", "secure", True,
    )  # fmt: skip
    assert shown["key_shredded_at"] is None
    key = TenantKey.objects.get(tenant=vcloud.tenant)  # one tenant key, shared
    assert (key.version, first.tenant_key_id, second.tenant_key_id) == (1, key.pk, key.pk)
    # Round trip: each volume's passphrase unwraps, is stable, and differs from the other's.
    passphrase = crypto.volume_passphrase(first)
    assert len(base64.urlsafe_b64decode(passphrase)) == 32
    assert crypto.volume_passphrase(Volume.objects.get(pk=first.pk)) == passphrase
    assert crypto.volume_passphrase(second) != passphrase
    # A wrapped data key copied onto another volume does not unwrap (bound to its volume).
    Volume.objects.filter(pk=second.pk).update(wrapped_key=first.wrapped_key)
    with pytest.raises(crypto.VolumeKeyError, match="does not unwrap"):
        crypto.volume_passphrase(Volume.objects.get(pk=second.pk))
    # A plain volume has no key at all.
    plain = vcloud.client.post("/api/v1/volumes", {"name": "plain", "size_gb": 1}, format="json")
    made = Volume.objects.get(pk=plain.json()["volume"]["id"])
    assert (made.tenant_key_id, made.wrapped_key) == (None, None)


def test_the_master_key_is_made_once_0600_and_another_one_cannot_unwrap(vcloud, settings):
    volume = encrypted_volume(vcloud)
    path = settings.VOLUME_MASTER_KEY_FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    passphrase = crypto.volume_passphrase(volume)

    # The same key given in the environment's form: it still unwraps.
    settings.VOLUME_MASTER_KEY = path.read_text().strip()
    assert crypto.volume_passphrase(volume) == passphrase
    # Another master key: a clear failure naming both keys' fingerprints, no garbage.
    settings.VOLUME_MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(crypto.VolumeKeyError, match="wrapped by master key") as refused:
        crypto.volume_passphrase(volume)
    assert passphrase.decode() not in str(refused.value)
    # Even with the fingerprint forged, AES-GCM refuses the wrong key.
    wrong = base64.b64decode(settings.VOLUME_MASTER_KEY)
    TenantKey.objects.filter(tenant=vcloud.tenant).update(master_key_id=crypto.key_id(wrong))
    with pytest.raises(crypto.VolumeKeyError, match="does not unwrap"):
        crypto.volume_passphrase(Volume.objects.get(pk=volume.pk))
    # A malformed or too open key is refused, never used.
    settings.VOLUME_MASTER_KEY = "c2hvcnQ="
    with pytest.raises(crypto.VolumeKeyError, match="has 5 bytes"):
        crypto.master_key()
    settings.VOLUME_MASTER_KEY = None
    os.chmod(path, 0o644)
    with pytest.raises(crypto.VolumeKeyError, match="readable by others"):
        crypto.master_key()


def test_a_broken_key_configuration_refuses_encrypted_creates_and_changes_nothing(vcloud, settings):
    settings.VOLUME_MASTER_KEY = "not base64!"
    before, since = business_rows(), last_event_id()
    answer = vcloud.client.post(
        "/api/v1/volumes", {"name": "v", "size_gb": 1, "volume_type": "secure"}, format="json"
    )
    assert_error(answer, 409, "encryption_unavailable")
    assert "base64" not in answer.json()["error"]["message"]  # the operator's log says it
    assert business_rows() == before
    # Only the refusal is audited, as every refused request is.
    events = AuditEvent.objects.filter(id__gt=since)
    assert [(e.action, e.outcome) for e in events] == [("volume.create", "refused")]


def test_no_key_is_in_clear_in_the_database(vcloud, settings):
    volume = encrypted_volume(vcloud)
    passphrase = crypto.volume_passphrase(volume)
    tenant_key = crypto._tenant_key_bytes(TenantKey.objects.get(tenant=vcloud.tenant))
    master = crypto.master_key()

    # What a dump of these tables holds: every column of every row, bytes as a dump shows
    # them (hex) and as they are.
    dump = ""
    with connection.cursor() as cursor:
        for table in (TenantKey._meta.db_table, Volume._meta.db_table, AuditEvent._meta.db_table,
                      Operation._meta.db_table):  # fmt: skip
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (our own table names)
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        raw = bytes(value)
                        dump += f" \\x{raw.hex()} {raw.decode('latin-1')}"
                    else:
                        dump += f" {value}"
    assert "\\x01" in dump  # the wrapped keys are there, wrapped
    for key in (passphrase, base64.urlsafe_b64decode(passphrase), tenant_key, master):
        for form in (key.hex(), base64.b64encode(key).decode(), key.decode("latin-1")):
            assert form not in dump


def test_an_encrypted_volume_from_an_image_is_refused_and_nothing_changes(vcloud):
    before, since = business_rows(), last_event_id()
    answer = vcloud.client.post(
        "/api/v1/volumes",
        {"name": "v", "size_gb": 1, "volume_type": "secure", "image": str(vcloud.image.pk)},
        format="json",
    )
    error = assert_error(answer, 400, "not_supported_yet")
    assert "create it empty" in error["message"]
    assert business_rows() == before
    assert [e.outcome for e in AuditEvent.objects.filter(id__gt=since)] == ["refused"]


def test_a_snapshot_of_an_encrypted_volume_is_refused_and_nothing_changes(vcloud):
    volume = encrypted_volume(vcloud)
    before, since = business_rows(), last_event_id()
    answer = vcloud.client.post(
        "/api/v1/volume-snapshots", {"volume": str(volume.pk), "name": "s"}, format="json"
    )
    assert_error(answer, 400, "not_supported_yet")
    assert business_rows() == before
    assert [e.outcome for e in AuditEvent.objects.filter(id__gt=since)] == ["refused"]


def test_an_attached_encrypted_volume_names_its_secret_in_the_domain(vcloud, plugs):
    instance_id = active_instance(vcloud)
    volume = encrypted_volume(vcloud)
    assert run_operation(attach(vcloud, instance_id, volume).json()["operation"]["id"]) == (
        "succeeded"
    )
    (attachment,) = attachments_of(uuid.UUID(instance_id))
    from compute.worker.steps import volume_disk

    disk = volume_disk(attachment)
    assert disk.encryption_secret == str(volume.pk)
    xml = domain_xml.disk_xml(disk)
    assert f'<encryption format="luks"><secret type="passphrase" uuid="{volume.pk}"' in xml
    assert naming.volume(volume.pk) in xml


def test_shred_is_refused_while_a_volume_is_attached_and_changes_nothing(vcloud, plugs):
    instance_id = active_instance(vcloud)
    volume = encrypted_volume(vcloud)
    assert run_operation(attach(vcloud, instance_id, volume).json()["operation"]["id"]) == (
        "succeeded"
    )
    before, since = business_rows(), last_event_id()

    with pytest.raises(CommandError, match="attached or busy") as refused:
        shred("acme")
    assert refused.value.returncode == 1
    assert "nothing changed" in str(refused.value)
    assert (business_rows(), last_event_id()) == (before, since)
    assert crypto.volume_passphrase(Volume.objects.get(pk=volume.pk))  # still opens


def test_after_a_shred_the_volume_cannot_be_attached_or_extended_only_deleted(vcloud, plugs):
    instance_id = active_instance(vcloud)
    volume = encrypted_volume(vcloud)
    plain = vcloud.client.post("/api/v1/volumes", {"name": "plain", "size_gb": 1}, format="json")
    plain_id = plain.json()["volume"]["id"]
    run_operation(plain.json()["operation"]["id"])
    since = last_event_id()

    printed = shred("acme")

    assert "1 key(s) destroyed (versions [1]), 1 encrypted volume(s)" in printed
    assert "host h01: 0 secret(s) undefined" in printed
    key = TenantKey.objects.get(tenant=vcloud.tenant)
    assert (bytes(key.wrapped_key), key.destroyed_at is not None) == (b"", True)
    shredded = Volume.objects.get(pk=volume.pk)
    assert (shredded.wrapped_key, shredded.key_shredded_at is not None) == (None, True)
    with pytest.raises(crypto.VolumeKeyShredded):
        crypto.volume_passphrase(shredded)
    (event,) = AuditEvent.objects.filter(id__gt=since)
    assert (event.action, event.tenant_id) == ("tenant.shred", vcloud.tenant.pk)
    assert event.details == {
        "key_versions_destroyed": [1], "volumes_shredded": [str(volume.pk)],
    }  # fmt: skip

    # The tenant sees why; attach and extend are refused; nothing changed by them.
    shown = vcloud.client.get(f"/api/v1/volumes/{volume.pk}").json()
    assert "can never be read again" in shown["fault"]
    assert parse_datetime(shown["key_shredded_at"]) == shredded.key_shredded_at
    attachments = VolumeAttachment.objects.count()
    assert_error(attach(vcloud, instance_id, shredded), 409, "volume_key_shredded")
    extend = vcloud.client.post(
        f"/api/v1/volumes/{volume.pk}/extend", {"size_gb": 3}, format="json"
    )
    assert_error(extend, 409, "volume_key_shredded")
    assert VolumeAttachment.objects.count() == attachments
    assert Volume.objects.get(pk=volume.pk).status == "available"
    # A plain volume is not affected; deleting the shredded one still erases it.
    assert run_operation(attach(vcloud, instance_id, Volume.objects.get(pk=plain_id))
                         .json()["operation"]["id"]) == "succeeded"  # fmt: skip
    deleted = vcloud.client.delete(f"/api/v1/volumes/{volume.pk}")
    assert run_operation(deleted.json()["operation"]["id"]) == "succeeded"
    # A new encrypted volume gets a new tenant key (version 2); the old one stays destroyed.
    again = encrypted_volume(vcloud, "fresh")
    assert TenantKey.objects.get(tenant=vcloud.tenant, destroyed_at=None).version == 2
    assert again.tenant_key_id == TenantKey.objects.get(version=2).pk
    assert crypto.volume_passphrase(again)


def test_shred_of_an_unknown_tenant_is_refused(vcloud):
    with pytest.raises(CommandError, match="No tenant"):
        shred("nobody")
