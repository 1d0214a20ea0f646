"""GET /api/v1/images/{id}/file: an image's file streamed back from its store, with the
SHA-256 recorded when it was uploaded (issue 11 item 9: a tenant leaves with its data)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from django.http import FileResponse

from images.services.images import image_file_path
from tests import factories

pytestmark = pytest.mark.django_db


def body_of(answer) -> bytes:
    return b"".join(answer.streaming_content)


def test_an_uploaded_image_downloads_byte_for_byte_with_its_sha256(cloud, tmp_path):
    raw = tmp_path / "disk.raw"
    raw.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several stream chunks, and a tail
    created = cloud.client.post(
        "/api/v1/images", {"name": "my disk", "disk_format": "raw"}, format="json"
    ).json()
    uploaded = cloud.client.put(
        f"/api/v1/images/{created['id']}/file",
        data=raw.read_bytes(),
        content_type="application/octet-stream",
    )
    assert uploaded.status_code == 200, uploaded.content

    answer = cloud.client.get(f"/api/v1/images/{created['id']}/file")

    assert answer.status_code == 200
    assert isinstance(answer, FileResponse)  # streamed from the file, not read into memory
    body = body_of(answer)
    digest = hashlib.sha256(raw.read_bytes())
    assert body == raw.read_bytes()
    assert int(answer["Content-Length"]) == len(body)
    assert answer["Content-Type"] == "application/octet-stream"
    assert answer["Content-Disposition"] == 'attachment; filename="my disk.raw"'
    assert answer["X-Content-SHA256"] == digest.hexdigest() == uploaded.json()["checksum_sha256"]
    assert answer["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    # Asked for as bytes, it is the same answer.
    again = cloud.client.get(
        f"/api/v1/images/{created['id']}/file", HTTP_ACCEPT="application/octet-stream"
    )
    assert again.status_code == 200
    assert body_of(again) == body


def test_a_public_image_downloads_too(cloud, tiny_qcow2):
    answer = cloud.client.get(f"/api/v1/images/{cloud.image.pk}/file")
    assert answer.status_code == 200
    assert body_of(answer) == tiny_qcow2.read_bytes()
    assert answer["X-Content-SHA256"] == hashlib.sha256(tiny_qcow2.read_bytes()).hexdigest()


def test_a_reader_may_download(cloud, make_caller, tiny_qcow2):
    image = factories.image(cloud.tenant, "mine", file=tiny_qcow2)
    reader = make_caller(cloud.tenant, "reader").client()
    assert reader.get(f"/api/v1/images/{image.pk}/file").status_code == 200


def test_another_tenants_private_image_is_a_404(cloud, make_tenant, make_caller, tiny_qcow2):
    other = make_tenant("other")
    theirs = factories.image(other, "theirs", file=tiny_qcow2)
    answer = cloud.client.get(f"/api/v1/images/{theirs.pk}/file")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")
    # Even asked for as bytes, the refusal is the one JSON error shape.
    answer = cloud.client.get(
        f"/api/v1/images/{theirs.pk}/file", HTTP_ACCEPT="application/octet-stream"
    )
    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "not_found"


def test_an_image_without_its_file_is_a_409(cloud, tiny_qcow2):
    queued = factories.image(cloud.tenant, "empty")
    answer = cloud.client.get(f"/api/v1/images/{queued.pk}/file")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "image_not_active")
    assert answer.json()["error"]["details"] == {"status": "queued"}
    # An active image whose file an operator removed by hand: a 409 saying so, not a 500.
    active = factories.image(cloud.tenant, "lost", file=tiny_qcow2)
    image_file_path(active).unlink()
    answer = cloud.client.get(f"/api/v1/images/{active.pk}/file")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "file_missing")
