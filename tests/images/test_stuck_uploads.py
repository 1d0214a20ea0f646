"""Stuck uploads (review L6): an upload holds its image (`saving`) under a lease renewed while
bytes arrive. When the process receiving it dies, the lease runs out: the beat task
`images.expire_uploads` puts the image back to `queued` (the transfer broke; nothing was
wrong with the file) and removes its partial file, and the owner may delete it — its quota
slot comes back — or upload again. A saving image whose lease has passed may be deleted even
before the task runs; one whose upload is alive may not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from iaas.celery import app as celery_app
from iaas.errors import ConflictError
from iaas.models import AuditEvent
from images.models import Image
from images.services import images as image_services
from images.tasks import expire_uploads
from tests import factories
from tests.factories import SYSTEM
from tests.support.fault_lab import shared_database_url

ROOT = Path(__file__).resolve().parents[2]

# The API process receiving an upload, as far as the upload goes: the upload service fed by
# a pipe (a short read returns what has arrived, as a socket would).
RECEIVER = """
import os, sys
import django
django.setup()
from iaas.audit import Actor
from images.models import Image
from images.services.images import image_upload
image = Image.objects.get(pk=sys.argv[1])
body = os.fdopen(0, "rb", buffering=0)
image_upload(actor=Actor.system("receiver"), image=image, stream=body, length=int(sys.argv[2]))
"""


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def parts(store: Path) -> list[Path]:
    return sorted(store.glob(".*.part"))


def quota_usage(client: Any) -> int:
    lines = client.get("/api/v1/quotas").json()["results"]
    return next(line["usage"] for line in lines if line["resource"] == "images")


@pytest.fixture
def killed_upload(
    transactional_db: None,
    image_store: Path,
    make_tenant: Callable[..., Any],
    make_caller: Callable[..., Any],
    tiny_qcow2: Path,
) -> SimpleNamespace:
    """A tenant's image whose upload was under way in another process when that process was
    killed (SIGKILL: no clean-up ran), once its lease (1 s there) has passed: the image is
    `saving` and a partial file lies in the store."""
    tenant = make_tenant("acme")
    client = make_caller(tenant, "member").client()
    image_id = client.post(
        "/api/v1/images", {"name": "big", "disk_format": "qcow2"}, format="json"
    ).json()["id"]
    content = tiny_qcow2.read_bytes()
    env = os.environ | {
        "DATABASE_URL": shared_database_url(),
        "DJANGO_SETTINGS_MODULE": "iaas.settings",
        "PYTHONPATH": str(ROOT),
        "ANDROMEDE_IMAGE_STORE_DIR": str(image_store),
        "ANDROMEDE_IMAGE_STORE_ZONE": django_settings.IMAGE_STORE_ZONE,
        "ANDROMEDE_IMAGE_UPLOAD_LEASE_SECONDS": "1",
    }
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, image_id, str(len(content))],
        stdin=subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        assert receiver.stdin is not None
        receiver.stdin.write(content[:65536])  # a quarter of the file, then nothing more
        receiver.stdin.flush()
        wait_for(lambda: any(p.stat().st_size > 0 for p in parts(image_store)), "a partial file")
        assert Image.objects.get(pk=image_id).status == "saving"
        receiver.send_signal(signal.SIGKILL)
        receiver.wait(timeout=10)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait(timeout=10)

    def lapsed() -> bool:
        return Image.objects.filter(pk=image_id, upload_expires_at__lt=timezone.now()).exists()

    wait_for(lapsed, "the lease to lapse")
    return SimpleNamespace(image_id=image_id, client=client, store=image_store, tenant=tenant)


def test_an_upload_whose_api_process_died_is_reset_by_the_beat_task_and_can_be_deleted(
    killed_upload,
):
    stuck = killed_upload
    assert stuck.client.get(f"/api/v1/images/{stuck.image_id}").json()["status"] == "saving"
    assert parts(stuck.store)
    assert quota_usage(stuck.client) == 1

    assert expire_uploads() == [stuck.image_id]

    shown = stuck.client.get(f"/api/v1/images/{stuck.image_id}").json()
    assert shown["status"] == "queued"
    assert "upload the file again" in shown["error_message"]
    assert parts(stuck.store) == []
    event = AuditEvent.objects.get(action="image.upload_expired", target_id=stuck.image_id)
    assert (event.outcome, event.tenant_id) == ("failed", stuck.tenant.pk)
    assert expire_uploads() == []  # nothing left to do

    assert stuck.client.delete(f"/api/v1/images/{stuck.image_id}").status_code == 204
    assert quota_usage(stuck.client) == 0
    assert stuck.client.get(f"/api/v1/images/{stuck.image_id}").status_code == 404


def test_after_a_dead_upload_is_reset_the_owner_uploads_the_file_again(killed_upload, tiny_qcow2):
    stuck = killed_upload
    expire_uploads()

    answer = stuck.client.put(
        f"/api/v1/images/{stuck.image_id}/file",
        tiny_qcow2.read_bytes(),
        content_type="application/octet-stream",
    )

    assert answer.status_code == 200, answer.content
    assert (answer.json()["status"], answer.json()["error_message"]) == ("active", "")
    assert sorted(p.name for p in stuck.store.iterdir()) == [stuck.image_id]


def test_a_dead_upload_can_be_deleted_before_the_beat_task_runs(killed_upload):
    stuck = killed_upload

    assert stuck.client.delete(f"/api/v1/images/{stuck.image_id}").status_code == 204

    assert quota_usage(stuck.client) == 0
    assert parts(stuck.store) == []
    assert expire_uploads() == []  # a deleted image is not touched again
    assert Image.objects.get(pk=stuck.image_id).status == "deleted"


# ---- A live upload keeps its lease ------------------------------------------------------------


class SlowBody:
    """An upload body arriving in small pieces; `during(n)` runs before piece n is given."""

    def __init__(self, content: bytes, during: Callable[[int], None], piece: int = 32768):
        self._pieces = [content[i : i + piece] for i in range(0, len(content), piece)]
        self._during = during
        self._given = 0

    def read(self, size: int = -1, /) -> bytes:
        if self._given >= len(self._pieces):
            return b""
        self._during(self._given)
        piece = self._pieces[self._given]
        self._given += 1
        return piece


@pytest.fixture
def queued(db: None, image_store: Path, make_tenant: Callable[..., Any]) -> Image:
    return factories.image(make_tenant("acme"), "big")


def test_an_upload_still_receiving_bytes_outlives_its_first_lease(
    settings, queued, tiny_qcow2, image_store
):
    settings.IMAGE_UPLOAD_LEASE = timedelta(seconds=0.6)
    expired: list[list[str]] = []

    def slowly(piece: int) -> None:
        time.sleep(0.25)  # 1.5 s in all: longer than the lease, bytes arriving all along
        if piece == 5:
            expired.append(image_services.image_uploads_expire())

    image = image_services.image_upload(
        actor=SYSTEM, image=queued, stream=SlowBody(tiny_qcow2.read_bytes(), slowly), length=None
    )

    assert expired == [[]]  # the beat task found it alive
    assert image.status == "active"
    assert image.upload_expires_at is None
    assert sorted(p.name for p in image_store.iterdir()) == [str(queued.pk)]


def test_a_live_upload_cannot_be_deleted(db, queued, tiny_qcow2, make_caller, image_store):
    client = make_caller(queued.tenant, "member").client()
    answers: list[Any] = []

    def delete_meanwhile(piece: int) -> None:
        if piece == 1:
            answers.append(client.delete(f"/api/v1/images/{queued.pk}"))

    image_services.image_upload(
        actor=SYSTEM,
        image=queued,
        stream=SlowBody(tiny_qcow2.read_bytes(), delete_meanwhile),
        length=None,
    )

    assert answers[0].status_code == 409
    assert answers[0].json()["error"]["code"] == "image_saving"
    assert Image.objects.get(pk=queued.pk).status == "active"


def test_an_upload_that_stalled_past_its_lease_is_abandoned_and_leaves_no_file(
    settings, queued, tiny_qcow2, image_store
):
    settings.IMAGE_UPLOAD_LEASE = timedelta(seconds=0.3)

    def stall(piece: int) -> None:
        if piece == 2:
            time.sleep(0.4)  # no byte for longer than the lease
            assert image_services.image_uploads_expire() == [str(queued.pk)]

    with pytest.raises(ConflictError) as refused:
        image_services.image_upload(
            actor=SYSTEM, image=queued, stream=SlowBody(tiny_qcow2.read_bytes(), stall), length=None
        )

    assert refused.value.code == "upload_expired"
    assert Image.objects.get(pk=queued.pk).status == "queued"
    assert list(image_store.iterdir()) == []


def test_the_beat_runs_the_upload_reaper_every_minute():
    schedule: dict[str, dict[str, Any]] = django_settings.CELERY_BEAT_SCHEDULE
    entry = next(e for e in schedule.values() if e["task"] == "images.expire_uploads")
    assert entry["schedule"] <= 60
    assert "images.expire_uploads" in celery_app.tasks
