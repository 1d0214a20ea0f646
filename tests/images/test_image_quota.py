"""The `image_gb` quota (review M7: images were counted, never sized): the stored bytes of a
tenant's images and snapshots, in GiB. A declared upload past it is refused before any byte
is read, an undeclared one is cut off as it passes it, and the check that counts is made
under the tenant's lock when the file is kept, so parallel uploads cannot pass it together.

The tenant's existing images are given large sizes directly in their rows (what the counter
reads) rather than uploading gibibytes in a test."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from iaas.audit import Actor
from iaas.errors import QuotaExceeded
from images.models import Image
from images.services import images as image_services
from tenants import services
from tests.images.test_images import (
    URL,
    created_image,
    http_put,
    in_parallel,
    qcow2_with_data,
    stored_files,
    upload,
)

pytestmark = [pytest.mark.django_db]

SYSTEM = Actor.system("tests")
MIB = 1024 * 1024
GIB = 1024 * MIB


@pytest.fixture(autouse=True)
def store(image_store: Path) -> Path:
    return image_store


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


def holding(tenant: Any, stored_bytes: int) -> Image:
    """An active image of the tenant whose file takes `stored_bytes` in the store."""
    image = image_services.image_create(
        actor=SYSTEM, tenant=tenant, name=f"held-{stored_bytes}", disk_format="raw"
    )
    Image.objects.filter(pk=image.pk).update(status=Image.Status.ACTIVE, size_bytes=stored_bytes)
    return image


def quota_usage(client: Any, resource: str) -> dict[str, Any]:
    lines = client.get("/api/v1/quotas").json()["results"]
    return next(line for line in lines if line["resource"] == resource)


def test_image_gb_counts_the_stored_bytes_in_gib_rounded_up(make_tenant, make_caller):
    tenant = make_tenant("acme")
    member = make_caller(tenant, "member")
    holding(tenant, GIB + 1)
    holding(tenant, 3 * MIB)

    line = quota_usage(member.client(), "image_gb")

    assert line["usage"] == 2
    assert line["limit"] == 100


def test_an_upload_past_the_quota_is_refused_before_any_byte_and_changes_nothing(
    make_tenant, make_caller, files, store
):
    tenant = make_tenant("acme")
    member = make_caller(tenant, "member")
    services.quota_set(actor=SYSTEM, tenant=tenant, resource="image_gb", limit=1)
    holding(tenant, GIB - MIB)
    image = created_image(member.client())
    before = list(Image.objects.order_by("pk").values())

    response = upload(member.client(), image["id"], qcow2_with_data(files, "d.qcow2", 2 * MIB))

    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"]["resource"] == "image_gb"
    assert list(Image.objects.order_by("pk").values()) == before
    assert stored_files(store) == []


def test_an_upload_within_the_quota_is_kept(make_tenant, make_caller, files):
    tenant = make_tenant("acme")
    member = make_caller(tenant, "member")
    services.quota_set(actor=SYSTEM, tenant=tenant, resource="image_gb", limit=1)
    holding(tenant, GIB - 8 * MIB)
    image = created_image(member.client())

    response = upload(member.client(), image["id"], qcow2_with_data(files, "d.qcow2", 2 * MIB))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"


def test_a_stream_without_length_is_cut_off_where_the_quota_ends(make_tenant, store):
    tenant = make_tenant("acme")
    services.quota_set(actor=SYSTEM, tenant=tenant, resource="image_gb", limit=1)
    holding(tenant, GIB - MIB)
    image = image_services.image_create(
        actor=SYSTEM, tenant=tenant, name="piped", disk_format="raw"
    )

    with pytest.raises(QuotaExceeded):
        image_services.image_upload(
            actor=SYSTEM, image=image, stream=io.BytesIO(b"\1" * (2 * MIB)), length=None
        )

    image.refresh_from_db()
    assert image.status == Image.Status.QUEUED
    assert stored_files(store) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DESIGN §12)")
def test_parallel_uploads_cannot_pass_the_quota_together(
    live_server, make_tenant, make_caller, files, store
):
    """Room for one 3 MiB file, two arrive at once: each fits the room on its own, so both
    stream in; the tenant's lock when keeping them lets exactly one be kept."""
    tenant = make_tenant("racers")
    caller = make_caller(tenant, "member")
    services.quota_set(actor=SYSTEM, tenant=tenant, resource="image_gb", limit=1)
    holding(tenant, GIB - 4 * MIB)
    images = [
        image_services.image_create(actor=SYSTEM, tenant=tenant, name=f"i{n}", disk_format="qcow2")
        for n in range(2)
    ]
    bodies = [qcow2_with_data(files, f"d{n}.qcow2", 3 * MIB).read_bytes() for n in range(2)]

    answers = in_parallel(
        [
            (
                lambda image=image, body=body: http_put(
                    live_server.url, f"{URL}/{image.id}/file", caller.token, body
                )
            )
            for image, body in zip(images, bodies, strict=True)
        ]
    )

    assert sorted(status for status, _ in answers) == [200, 403], answers
    [refused] = [body for status, body in answers if status == 403]
    assert refused["error"]["code"] == "quota_exceeded"
    statuses = sorted(
        Image.objects.filter(pk__in=[i.pk for i in images]).values_list("status", flat=True)
    )
    assert statuses == [Image.Status.ACTIVE, Image.Status.QUEUED]
    kept = Image.objects.get(pk__in=[i.pk for i in images], status=Image.Status.ACTIVE)
    assert stored_files(store) == [str(kept.pk)]
