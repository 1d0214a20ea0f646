"""The portal's volumes and volume snapshots pages, on libvirt's fake hypervisor: the lists,
create, extend, snapshot, export (and the download of the copy), delete with a confirmation,
through the services the API calls and with its rules: a foreign volume, snapshot or export
is a 404, a reader reads and cannot write, a refusal is said and changes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client

from iaas.models import AuditEvent
from images.models import Export
from images.services.stores import image_store_create
from operations.models import Operation
from operations.worker import run_operation
from tenants.models import Role
from tests import factories
from tests.factories import SYSTEM
from volumes.models import Volume, VolumeSnapshot
from volumes.services import exports as export_services
from volumes.services import snapshots as snapshot_services

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    client.cookies["andromede_language"] = "en"
    return client


@pytest.fixture
def vportal(cloud: SimpleNamespace, make_tenant, make_caller, tmp_path: Path) -> SimpleNamespace:
    """The `cloud` with the volume type `standard`, an image store in the host's zone (it
    keeps that zone's exports), another tenant, a reader, and the member's portal client."""
    cloud.volume_type = factories.volume_type("standard", max_size_gb=100)
    directory = tmp_path / "par1-store"
    directory.mkdir()
    image_store_create(actor=SYSTEM, name="par1", zone=cloud.zone, path=str(directory))
    cloud.other = make_tenant("other")
    cloud.reader = make_caller(cloud.tenant, Role.READER)
    cloud.web = signed_in(cloud.member.user)
    return cloud


def available(
    vportal: SimpleNamespace, name: str = "data", size_gb: int = 2, tenant=None
) -> Volume:
    return factories.available_volume(
        tenant or vportal.tenant, volume_type=vportal.volume_type, name=name, size_gb=size_gb
    )


def snapshot_of(volume: Volume, name: str = "before-upgrade") -> VolumeSnapshot:
    made, operation = snapshot_services.volume_snapshot_create(
        actor=SYSTEM, volume=volume, name=name
    )
    factories.run(operation)
    made.refresh_from_db()
    return made


def url(tail: str = "", slug: str = "acme") -> str:
    return f"/t/{slug}/{tail}"


def test_the_list_shows_the_tenants_volumes_and_not_anothers(vportal):
    available(vportal, "acme-data", 3)
    available(vportal, "other-secret", tenant=vportal.other)

    page = vportal.web.get(url("volumes/"))

    html = page.content.decode()
    assert page.status_code == 200
    assert "acme-data" in html
    assert "3,0" in html or "3.0" in html  # its size, with filesizeformat
    assert "standard" in html
    assert "other-secret" not in html
    assert "Create a volume" in html


def test_a_member_creates_a_volume(vportal):
    form = vportal.web.get(url("volumes/create/"))
    answer = vportal.web.post(
        url("volumes/create/"),
        {"name": "logs", "size_gb": "4", "volume_type": str(vportal.volume_type.pk)},
    )

    volume = Volume.objects.get(tenant=vportal.tenant, name="logs")
    assert form.status_code == 200
    assert answer.status_code == 302
    assert answer["Location"] == url(f"volumes/{volume.pk}/")
    assert volume.size_gb == 4
    assert volume.status == "creating"
    assert Operation.objects.filter(action="volume.create", target_id=volume.pk).exists()
    assert AuditEvent.objects.filter(action="volume.create", target_id=str(volume.pk)).exists()


def test_a_refused_create_shows_why_and_makes_nothing(vportal):
    before = Volume.objects.count()

    too_big = vportal.web.post(
        url("volumes/create/"),
        {"name": "huge", "size_gb": "500", "volume_type": str(vportal.volume_type.pk)},
    )
    both = vportal.web.post(
        url("volumes/create/"),
        {
            "name": "both",
            "size_gb": "2",
            "volume_type": str(vportal.volume_type.pk),
            "image": str(vportal.image.pk),
            "snapshot": str(snapshot_of(available(vportal)).pk),
        },
    )

    assert too_big.status_code == 400
    assert 'class="message message-error"' in too_big.content.decode()
    assert both.status_code == 400
    assert "Choose an image or a snapshot, not both." in both.content.decode()
    assert Volume.objects.count() == before + 1  # the snapshot's volume only


def test_a_volume_is_made_from_a_snapshot_from_the_snapshots_page(vportal):
    snapshot = snapshot_of(available(vportal))

    detail = vportal.web.get(url(f"volume-snapshots/{snapshot.pk}/")).content.decode()
    form = vportal.web.get(url(f"volumes/create/?snapshot={snapshot.pk}")).content.decode()
    answer = vportal.web.post(
        url("volumes/create/"),
        {
            "name": "restored",
            "size_gb": "2",
            "volume_type": str(vportal.volume_type.pk),
            "snapshot": str(snapshot.pk),
        },
    )

    assert f"volumes/create/?snapshot={snapshot.pk}" in detail
    assert f'<option value="{snapshot.pk}" selected>' in form
    assert answer.status_code == 302
    assert Volume.objects.get(name="restored").source_snapshot_id == snapshot.pk


def test_another_tenants_volume_snapshot_and_export_are_404(vportal):
    foreign = available(vportal, "other-secret", tenant=vportal.other)
    foreign_snapshot = snapshot_of(foreign)
    export = factories.run(export_services.volume_export(actor=SYSTEM, volume=foreign)[1])
    foreign_export = Export.objects.get(source_id=foreign.pk)

    for tail in ("", "delete/"):
        assert vportal.web.get(url(f"volumes/{foreign.pk}/{tail}")).status_code == 404
        assert (
            vportal.web.get(url(f"volume-snapshots/{foreign_snapshot.pk}/{tail}")).status_code
            == 404
        )
    for verb in ("extend/", "snapshot/", "export/", "delete/"):
        assert (
            vportal.web.post(
                url(f"volumes/{foreign.pk}/{verb}"), {"size_gb": 5, "name": "x"}
            ).status_code
            == 404
        )
    for verb in ("export/", "delete/"):
        assert (
            vportal.web.post(url(f"volume-snapshots/{foreign_snapshot.pk}/{verb}")).status_code
            == 404
        )
    assert vportal.web.get(url(f"exports/{foreign_export.pk}/file/")).status_code == 404
    foreign.refresh_from_db()
    assert export.status == "succeeded"
    assert foreign.status == "available"
    assert foreign.size_gb == 2
    assert VolumeSnapshot.objects.get(pk=foreign_snapshot.pk).status == "available"


def test_a_reader_sees_no_write_button_and_its_posts_change_nothing(vportal):
    volume = available(vportal)
    snapshot = snapshot_of(volume)
    reader = signed_in(vportal.reader.user)
    counts = (Volume.objects.count(), VolumeSnapshot.objects.count(), Export.objects.count())

    listing = reader.get(url("volumes/")).content.decode()
    detail = reader.get(url(f"volumes/{volume.pk}/")).content.decode()
    snap_page = reader.get(url(f"volume-snapshots/{snapshot.pk}/")).content.decode()
    posts = [
        reader.post(url("volumes/create/"), {"name": "x", "size_gb": 1,
                                            "volume_type": str(vportal.volume_type.pk)}),
        reader.post(url(f"volumes/{volume.pk}/extend/"), {"size_gb": 5}),
        reader.post(url(f"volumes/{volume.pk}/snapshot/"), {"name": "x"}),
        reader.post(url(f"volumes/{volume.pk}/export/")),
        reader.post(url(f"volumes/{volume.pk}/delete/")),
        reader.post(url(f"volume-snapshots/{snapshot.pk}/export/")),
        reader.post(url(f"volume-snapshots/{snapshot.pk}/delete/")),
    ]  # fmt: skip

    assert "Create a volume" not in listing
    for html in (detail, snap_page):
        assert "/delete/" not in html
        assert "/export/" not in html
    assert "/extend/" not in detail
    assert "/snapshot/" not in detail
    assert [p.status_code for p in posts] == [403] * len(posts)
    volume.refresh_from_db()
    assert (volume.status, volume.size_gb) == ("available", 2)
    assert (
        Volume.objects.count(),
        VolumeSnapshot.objects.count(),
        Export.objects.count(),
    ) == counts


def test_a_member_extends_a_volume_and_a_shrink_is_refused(vportal):
    volume = available(vportal)

    shrink = vportal.web.post(url(f"volumes/{volume.pk}/extend/"), {"size_gb": 1}, follow=True)
    volume.refresh_from_db()
    size_after_shrink = volume.size_gb
    grow = vportal.web.post(url(f"volumes/{volume.pk}/extend/"), {"size_gb": 5})

    volume.refresh_from_db()
    assert "A volume only grows" in shrink.content.decode()
    assert size_after_shrink == 2
    assert grow.status_code == 302
    assert (volume.status, volume.size_gb) == ("extending", 5)
    assert Operation.objects.filter(action="volume.extend", target_id=volume.pk).exists()


def test_the_detail_shows_the_snapshots_and_the_operations(vportal):
    volume = available(vportal)
    vportal.web.post(url(f"volumes/{volume.pk}/snapshot/"), {"name": "nightly"})

    snapshot = VolumeSnapshot.objects.get(volume=volume)
    html = vportal.web.get(url(f"volumes/{volume.pk}/")).content.decode()
    snapshots_page = vportal.web.get(url("volume-snapshots/")).content.decode()

    assert snapshot.name == "nightly"
    assert snapshot.status == "creating"
    assert "nightly" in html
    assert "nightly" in snapshots_page
    assert "create the volume" in html  # the volume's operations
    snapshot_html = vportal.web.get(url(f"volume-snapshots/{snapshot.pk}/")).content.decode()
    assert "snapshot the volume" in snapshot_html  # the snapshot's
    # A snapshot in progress: both pages refresh themselves until it is made.
    assert 'hx-trigger="every 3s"' in snapshots_page
    assert 'hx-trigger="every 3s"' in html


def test_an_export_is_made_then_downloaded_with_its_sha256(vportal):
    volume = available(vportal)

    answer = vportal.web.post(url(f"volumes/{volume.pk}/export/"))
    export = Export.objects.get(source_id=volume.pk)
    operation = Operation.objects.get(action="volume.export", target_id=volume.pk)
    assert run_operation(operation.pk) == "succeeded"
    html = vportal.web.get(url(f"volumes/{volume.pk}/")).content.decode()
    download = vportal.web.get(url(f"exports/{export.pk}/file/"))

    export.refresh_from_db()
    assert answer.status_code == 302
    assert f"/exports/{export.pk}/file/" in html
    assert export.checksum_sha256 in html
    assert download.status_code == 200
    assert download["X-Content-SHA256"] == export.checksum_sha256
    assert (
        hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == export.checksum_sha256
    )


def test_a_member_deletes_a_volume_after_a_confirmation(vportal):
    volume = available(vportal)
    snapshot_of(volume)

    confirm = vportal.web.get(url(f"volumes/{volume.pk}/delete/"))
    deleted = vportal.web.post(url(f"volumes/{volume.pk}/delete/"))

    volume.refresh_from_db()
    assert confirm.status_code == 200
    assert "Its snapshot stays" in confirm.content.decode()
    assert deleted.status_code == 302
    assert volume.status == "deleting"
    assert Operation.objects.filter(action="volume.delete", target_id=volume.pk).exists()


def test_a_refused_delete_says_why_and_changes_nothing(vportal):
    volume, _operation = factories.volume(vportal.tenant, volume_type=vportal.volume_type)

    answer = vportal.web.post(url(f"volumes/{volume.pk}/delete/"), follow=True)

    volume.refresh_from_db()
    assert volume.status == "creating"
    assert "cannot be done in the resource&#x27;s current state" in answer.content.decode()


def test_a_member_deletes_a_snapshot_after_a_confirmation(vportal):
    snapshot = snapshot_of(available(vportal))

    confirm = vportal.web.get(url(f"volume-snapshots/{snapshot.pk}/delete/"))
    deleted = vportal.web.post(url(f"volume-snapshots/{snapshot.pk}/delete/"))

    snapshot.refresh_from_db()
    assert confirm.status_code == 200
    assert deleted.status_code == 302
    assert snapshot.status == "deleting"
