"""Images (DESIGN §8): metadata, streamed uploads inspected with qemu-img, visibility and
isolation, quota, the operators' public images and `manage.py image_import`.

Every image file here is a real one made by `qemu-img` (qcow2, raw, with a backing file, with
an external data file), uploaded through the API into a per-test image store."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from iaas.audit import Actor
from iaas.errors import TooLargeError
from iaas.models import AuditEvent
from images.models import Image
from images.services import images as image_services
from tenants import services

pytestmark = [pytest.mark.django_db]

URL = "/api/v1/images"
ADMIN_URL = "/api/v1/admin/images"
SYSTEM = Actor.system("tests")
MIB = 1024 * 1024


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def store(image_store: Path) -> Path:
    """Each test has an image store of its own."""
    return image_store


def qemu_img(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, cwd=cwd)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


def qcow2_with_data(folder: Path, name: str, data_bytes: int, virtual: str = "64M") -> Path:
    """A qcow2 image holding `data_bytes` of random data (so its file is about that big)."""
    raw = folder / f"{name}.raw"
    raw.write_bytes(os.urandom(data_bytes))
    qemu_img("resize", "-q", "-f", "raw", str(raw), virtual)
    path = folder / name
    qemu_img("convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path))
    raw.unlink()
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_files(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir()) if store.exists() else []


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def member(tenant, make_caller):
    return make_caller(tenant, "member")


def create(client: Any, name: str = "debian", disk_format: str = "qcow2", **extra: Any) -> Any:
    return client.post(URL, {"name": name, "disk_format": disk_format, **extra}, format="json")


def upload(client: Any, image_id: str, path: Path, base: str = URL) -> Any:
    return client.put(
        f"{base}/{image_id}/file",
        data=path.read_bytes(),
        content_type="application/octet-stream",
    )


def created_image(client: Any, **kwargs: Any) -> dict[str, Any]:
    response = create(client, **kwargs)
    assert response.status_code == 201, response.content
    return response.json()


# ---- create and upload ---------------------------------------------------------------------


def test_create_is_queued_and_private(member):
    body = created_image(
        member.client(), name="Debian 12 (bookworm)", min_disk_gb=2, min_ram_mb=256
    )
    assert body["status"] == "queued"
    assert body["visibility"] == "private"
    assert body["min_disk_gb"] == 2
    assert body["min_ram_mb"] == 256
    assert body["size_bytes"] is None
    assert body["checksum_sha256"] == ""
    assert body["source_instance"] is None  # an upload, not a snapshot
    assert set(body) == {
        "id", "name", "disk_format", "status", "visibility", "min_disk_gb", "min_ram_mb",
        "protected", "size_bytes", "virtual_size_bytes", "checksum_sha256", "error_message",
        "created_at", "updated_at", "source_instance", "zone",
    }  # fmt: skip
    assert body["zone"] == "fr-demo-1"  # the default store's, which residency FR allows
    image = Image.objects.get()
    assert image.tenant == member.tenant
    assert AuditEvent.objects.filter(action="image.create", target_id=body["id"]).exists()


def test_a_qcow2_larger_than_the_api_body_limit_streams_in_and_becomes_active(member, files, store):
    # 5 MiB of data: five times the API's 1 MiB body limit, which must not apply here.
    path = qcow2_with_data(files, "disk.qcow2", 5 * MIB, virtual="64M")
    assert path.stat().st_size > 5 * MIB
    client = member.client()
    image = created_image(client)

    with override_settings(API_MAX_BODY_BYTES=MIB):
        response = upload(client, image["id"], path)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["checksum_sha256"] == sha256_of(path)
    assert body["size_bytes"] == path.stat().st_size
    assert body["virtual_size_bytes"] == 64 * MIB
    assert body["error_message"] == ""
    assert stored_files(store) == [image["id"]]  # no temporary file left behind
    assert (store / image["id"]).read_bytes() == path.read_bytes()
    event = AuditEvent.objects.get(action="image.upload", target_id=image["id"])
    assert event.outcome == "success"
    assert event.details["checksum_sha256"] == body["checksum_sha256"]
    assert client.get(f"{URL}/{image['id']}").json() == body


def test_a_raw_image_becomes_active(member, files, store):
    path = files / "disk.raw"
    path.write_bytes(b"\0" * 512 + os.urandom(2 * MIB - 512))
    client = member.client()
    image = created_image(client, disk_format="raw")
    response = upload(client, image["id"], path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["virtual_size_bytes"] == 2 * MIB
    assert body["checksum_sha256"] == sha256_of(path)
    assert stored_files(store) == [image["id"]]


# ---- refused files -------------------------------------------------------------------------


def assert_refused(client: Any, image_id: str, path: Path, store: Path, words: str) -> None:
    error = error_of(upload(client, image_id, path), 400, "image_refused")
    assert words in error["message"]
    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.ERROR
    assert words in image.error_message
    assert image.checksum_sha256 == ""
    assert image.size_bytes is None
    assert stored_files(store) == []  # neither the file nor a temporary one is kept
    event = AuditEvent.objects.get(action="image.upload", target_id=image_id)
    assert event.outcome == "refused"  # once: the service's event, not the API's as well
    assert client.get(f"{URL}/{image_id}").json()["error_message"] == image.error_message


def test_a_qcow2_declared_raw_is_refused(member, files, store):
    path = files / "disk.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "16M")
    client = member.client()
    image = created_image(client, disk_format="raw")
    assert_refused(client, image["id"], path, store, "is a qcow2 image, not raw")


def test_a_raw_file_declared_qcow2_is_refused(member, files, store):
    path = files / "disk.raw"
    path.write_bytes(os.urandom(MIB))
    client = member.client()
    image = created_image(client, disk_format="qcow2")
    assert_refused(client, image["id"], path, store, "cannot read the file as qcow2")


def test_a_qcow2_with_a_backing_file_is_refused(member, files, store):
    qemu_img("create", "-q", "-f", "qcow2", "base.qcow2", "16M", cwd=files)
    qemu_img(
        "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "overlay.qcow2",
        cwd=files,
    )  # fmt: skip
    client = member.client()
    image = created_image(client)
    assert_refused(client, image["id"], files / "overlay.qcow2", store, "backing file")


def test_a_qcow2_with_an_external_data_file_is_refused(member, files, store):
    qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=x.raw", "img.qcow2", "1M", cwd=files)
    client = member.client()
    image = created_image(client)
    assert_refused(client, image["id"], files / "img.qcow2", store, "external data file")


def test_an_image_in_error_takes_no_second_file(member, files, store):
    path = files / "disk.raw"
    path.write_bytes(os.urandom(MIB))
    client = member.client()
    image = created_image(client)  # declared qcow2: refused
    upload(client, image["id"], path)
    error = error_of(upload(client, image["id"], path), 409, "image_not_queued")
    assert error["details"] == {"status": "error"}


# ---- size limit, empty and wrong uploads ---------------------------------------------------


def test_an_image_over_the_limit_is_413_and_the_image_stays_queued(member, files, store):
    path = qcow2_with_data(files, "disk.qcow2", 2 * MIB)
    client = member.client()
    image = created_image(client)

    with override_settings(IMAGE_MAX_BYTES=MIB):
        error = error_of(upload(client, image["id"], path), 413, "image_too_large")
    assert error["details"] == {"limit_bytes": MIB}
    assert Image.objects.get(pk=image["id"]).status == Image.Status.QUEUED
    assert stored_files(store) == []

    # the owner may try again (here under a larger limit)
    response = upload(client, image["id"], path)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"


def test_a_stream_without_length_is_cut_at_the_limit(member, store):
    # No declared length (a chunked upload, or a command's pipe): the limit is counted as the
    # bytes arrive, and the partial file is removed.
    image = image_services.image_create(
        actor=SYSTEM, tenant=member.tenant, name="piped", disk_format="raw"
    )
    with override_settings(IMAGE_MAX_BYTES=3 * MIB + 1), pytest.raises(TooLargeError):
        image_services.image_upload(
            actor=SYSTEM, image=image, stream=io.BytesIO(b"\1" * (4 * MIB)), length=None
        )
    image.refresh_from_db()
    assert image.status == Image.Status.QUEUED
    assert stored_files(store) == []


def test_an_upload_shorter_than_declared_is_refused_and_stays_queued(member, store):
    image = image_services.image_create(
        actor=SYSTEM, tenant=member.tenant, name="short", disk_format="raw"
    )
    from iaas.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as refused:
        image_services.image_upload(
            actor=SYSTEM, image=image, stream=io.BytesIO(b"\1" * 1000), length=5000
        )
    assert refused.value.code == "incomplete_upload"
    image.refresh_from_db()
    assert image.status == Image.Status.QUEUED
    assert stored_files(store) == []


def test_an_empty_upload_is_refused(member, store):
    client = member.client()
    image = created_image(client)
    response = client.put(
        f"{URL}/{image['id']}/file", data=b"", content_type="application/octet-stream"
    )
    error_of(response, 400, "empty_upload")
    assert Image.objects.get(pk=image["id"]).status == Image.Status.QUEUED


def test_an_upload_must_be_octet_stream(member, files):
    path = files / "disk.raw"
    path.write_bytes(os.urandom(4096))
    client = member.client()
    image = created_image(client, disk_format="raw")
    response = client.put(
        f"{URL}/{image['id']}/file", data=path.read_bytes(), content_type="application/json"
    )
    error_of(response, 415, "unsupported_media_type")
    assert Image.objects.get(pk=image["id"]).status == Image.Status.QUEUED


def test_the_body_limit_still_applies_to_other_endpoints(member):
    client = member.client()
    body = json.dumps({"name": "big", "disk_format": "qcow2", "x": "y" * 2 * MIB}).encode()
    response = client.generic("POST", URL, body, content_type="application/json")
    error = error_of(response, 413, "request_too_large")
    assert error["details"] == {"limit_bytes": MIB}
    assert not Image.objects.exists()


# ---- state -----------------------------------------------------------------------------------


def test_a_second_upload_to_an_active_image_is_409(member, files, store):
    path = files / "disk.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "16M")
    client = member.client()
    image = created_image(client)
    assert upload(client, image["id"], path).status_code == 200
    error = error_of(upload(client, image["id"], path), 409, "image_not_queued")
    assert error["details"] == {"status": "active"}
    assert Image.objects.get(pk=image["id"]).checksum_sha256 == sha256_of(path)


def in_parallel(calls: list[Any]) -> list[Any]:
    """Run every call on its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> Any:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def http_put(base_url: str, path: str, token: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - the URL is the live test server's
        base_url + path,
        data=body,
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DESIGN §12)")
def test_concurrent_uploads_to_one_image_one_wins(
    live_server, make_tenant, make_caller, files, store
):
    tenant = make_tenant("racers")
    caller = make_caller(tenant, "member")
    image = image_services.image_create(
        actor=SYSTEM, tenant=tenant, name="contested", disk_format="qcow2"
    )
    bodies = [qcow2_with_data(files, f"disk{n}.qcow2", 3 * MIB).read_bytes() for n in range(4)]

    answers = in_parallel(
        [
            (
                lambda body=body: http_put(
                    live_server.url, f"{URL}/{image.id}/file", caller.token, body
                )
            )
            for body in bodies
        ]
    )

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 409, 409, 409], answers
    [winner] = [body for status, body in answers if status == 200]
    for status, body in answers:
        if status == 409:
            assert body["error"]["code"] == "image_not_queued"
    image.refresh_from_db()
    assert image.status == Image.Status.ACTIVE
    assert image.checksum_sha256 == winner["checksum_sha256"]
    assert winner["checksum_sha256"] in {hashlib.sha256(b).hexdigest() for b in bodies}
    assert stored_files(store) == [str(image.id)]
    assert hashlib.sha256((store / str(image.id)).read_bytes()).hexdigest() == image.checksum_sha256


# ---- delete ----------------------------------------------------------------------------------


def test_owner_deletes_an_image_and_its_file(
    member, files, store, django_capture_on_commit_callbacks
):
    path = files / "disk.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "16M")
    client = member.client()
    image = created_image(client)
    upload(client, image["id"], path)
    assert stored_files(store) == [image["id"]]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"{URL}/{image['id']}")

    assert response.status_code == 204
    assert stored_files(store) == []
    assert Image.objects.get(pk=image["id"]).status == Image.Status.DELETED
    assert client.get(f"{URL}/{image['id']}").status_code == 404
    assert client.get(URL).json()["results"] == []
    assert AuditEvent.objects.filter(action="image.delete", target_id=image["id"]).exists()
    assert client.delete(f"{URL}/{image['id']}").status_code == 404


def test_a_protected_image_cannot_be_deleted(make_caller, files):
    operator = make_caller(None, operator=True)
    client = operator.client()
    response = client.post(
        ADMIN_URL, {"name": "golden", "disk_format": "qcow2", "protected": True}, format="json"
    )
    assert response.status_code == 201, response.content
    error_of(client.delete(f"{ADMIN_URL}/{response.json()['id']}"), 409, "image_protected")


# ---- visibility, isolation and roles -------------------------------------------------------


@pytest.fixture
def public_image(make_caller, files) -> dict[str, Any]:
    """A public image published by an operator through the admin API."""
    operator = make_caller(None, operator=True)
    client = operator.client()
    created = client.post(
        ADMIN_URL, {"name": "andromede-test", "disk_format": "qcow2"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["visibility"] == "public"
    assert body["tenant"] is None
    path = files / "public.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "32M")
    uploaded = upload(client, body["id"], path, base=ADMIN_URL)
    assert uploaded.status_code == 200, uploaded.content
    assert uploaded.json()["status"] == "active"
    return uploaded.json()


def test_tenants_see_their_own_and_public_images_only(
    member, make_tenant, make_caller, public_image
):
    mine = created_image(member.client(), name="mine")
    other = make_caller(make_tenant("globex"), "member")
    theirs = created_image(other.client(), name="theirs")

    listed = {i["name"]: i for i in member.client().get(URL).json()["results"]}
    assert set(listed) == {"mine", "andromede-test"}
    assert listed["andromede-test"]["visibility"] == "public"
    assert {i["name"] for i in other.client().get(URL).json()["results"]} == {
        "theirs",
        "andromede-test",
    }
    # a foreign private image does not exist for this tenant
    client = member.client()
    assert client.get(f"{URL}/{theirs['id']}").status_code == 404
    assert client.delete(f"{URL}/{theirs['id']}").status_code == 404
    response = client.put(
        f"{URL}/{theirs['id']}/file", data=b"x" * 10, content_type="application/octet-stream"
    )
    assert response.status_code == 404
    assert Image.objects.get(pk=theirs["id"]).status == Image.Status.QUEUED
    # the public image can be read, not deleted or overwritten
    assert client.get(f"{URL}/{public_image['id']}").status_code == 200
    error_of(client.delete(f"{URL}/{public_image['id']}"), 403, "public_image")
    assert Image.objects.get(pk=public_image["id"]).status == Image.Status.ACTIVE
    assert listed["mine"]["id"] == mine["id"]


def test_filters(member, public_image):
    client = member.client()
    created_image(client, name="mine", disk_format="raw")
    names = lambda query: sorted(i["name"] for i in client.get(URL + query).json()["results"])  # noqa: E731
    assert names("?visibility=public") == ["andromede-test"]
    assert names("?visibility=private") == ["mine"]
    assert names("?status=queued") == ["mine"]
    assert names("?status=active") == ["andromede-test"]
    assert names("?disk_format=raw") == ["mine"]
    assert names("?name=mine") == ["mine"]
    error_of(client.get(URL + "?owner=me"), 400, "unknown_filter")
    error_of(client.get(URL + "?status=sleeping"), 400, "invalid")


def test_a_tenant_cannot_publish_a_public_image(member):
    error_of(create(member.client(), visibility="public"), 403, "public_image_forbidden")
    assert not Image.objects.exists()


def test_an_operator_token_has_no_tenant_images(make_caller):
    operator = make_caller(None, operator=True)
    error_of(operator.client().get(URL), 403, "operator_token")


def test_tenants_cannot_use_the_operator_endpoint(member):
    client = member.client()
    error_of(client.get(ADMIN_URL), 403, "permission_denied")
    posted = client.post(ADMIN_URL, {"name": "x", "disk_format": "qcow2"}, format="json")
    error_of(posted, 403, "permission_denied")
    assert not Image.objects.exists()
    refused = AuditEvent.objects.get(action="image.create", outcome="refused")
    assert refused.actor_id == member.user.pk


def test_reader_reads_but_cannot_create_upload_or_delete(tenant, member, make_caller, files):
    image = created_image(member.client())
    reader = make_caller(tenant, "reader").client()
    assert reader.get(URL).status_code == 200
    assert reader.get(f"{URL}/{image['id']}").status_code == 200
    error_of(create(reader, name="nope"), 403, "permission_denied")
    path = files / "disk.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "16M")
    error_of(upload(reader, image["id"], path), 403, "permission_denied")
    error_of(reader.delete(f"{URL}/{image['id']}"), 403, "permission_denied")
    assert Image.objects.get(pk=image["id"]).status == Image.Status.QUEUED


def test_the_images_quota_counts_private_images_not_deleted(tenant, member, public_image):
    services.quota_set(actor=SYSTEM, tenant=tenant, resource="images", limit=2)
    client = member.client()
    first = created_image(client, name="one")
    created_image(client, name="two")
    error = error_of(create(client, name="three"), 403, "quota_exceeded")
    assert error["details"]["limit"] == 2
    assert client.delete(f"{URL}/{first['id']}").status_code == 204
    assert create(client, name="three").status_code == 201
    line = [
        line for line in client.get("/api/v1/quotas").json()["results"]
        if line["resource"] == "images"
    ]  # fmt: skip
    assert line == [{"resource": "images", "limit": 2, "usage": 2, "remaining": 0}]


def test_create_honours_idempotency_key(member):
    client = member.client()
    headers = {"HTTP_IDEMPOTENCY_KEY": "img-1"}
    body = {"name": "once", "disk_format": "qcow2"}
    first = client.post(URL, body, format="json", **headers)
    again = client.post(URL, body, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert Image.objects.count() == 1


# ---- manage.py image_import ----------------------------------------------------------------


def test_image_import_creates_a_public_image_once(files, store):
    path = files / "test.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "32M")
    out = io.StringIO()
    call_command(
        "image_import", "andromede-test", str(path), "--disk-format", "qcow2", "--public",
        "--min-disk", "1", "--min-ram", "128", "--if-missing", stdout=out,
    )  # fmt: skip
    image = Image.objects.get()
    assert image.visibility == Image.Visibility.PUBLIC
    assert image.tenant is None
    assert image.status == Image.Status.ACTIVE
    assert image.checksum_sha256 == sha256_of(path)
    assert (image.min_disk_gb, image.min_ram_mb) == (1, 128)
    assert stored_files(store) == [str(image.id)]

    call_command(
        "image_import", "andromede-test", str(path), "--disk-format", "qcow2", "--public",
        "--if-missing", stdout=out,
    )  # fmt: skip
    assert Image.objects.count() == 1
    assert "already there" in out.getvalue()


def test_image_import_refuses_a_bad_file(files, store):
    from django.core.management.base import CommandError

    path = files / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(files / "base.qcow2"), "16M")
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(path), cwd=files)
    with pytest.raises(CommandError, match="backing file"):
        call_command("image_import", "bad", str(path), "--disk-format", "qcow2", "--public")
    assert Image.objects.get().status == Image.Status.ERROR
    assert stored_files(store) == []
