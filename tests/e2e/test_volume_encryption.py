"""An encrypted volume on a real host, as a tenant and an auditor see it (issue 11 item 7,
"Done means"): through the API, a real Celery worker on the host's queue, this machine's
libvirtd with QEMU (TCG) and the project's test image. One guest boots, running a probe that
writes a marker on each disk hot-plugged as vdb, twice:

- first an encrypted volume (QEMU's LUKS in a qcow2, its passphrase a libvirt secret defined
  only while it is attached): the file on the host never holds the marker, though the
  volume read with its key does;
- then a plain volume, whose file does hold it (so the search would find it).

Then `manage.py tenant_shred`: the volume can no longer be attached (409), its key cannot be
had from the database, and `qemu-img` cannot open it without the key."""

from __future__ import annotations

import io
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command

from hosts import naming
from hosts.hypervisors import hypervisor_for
from hosts.models import Host
from iaas.celery import app, host_queue
from iaas.models import AuditEvent
from tests import factories
from tests.e2e.conftest import import_test_image_and_tiny_flavor
from tests.support.local_host import onboarded_local_host
from tests.support.volume_guests import WRITER_TWICE, TenantView
from volumes import crypto
from volumes.models import Volume

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
HOST = "e2e-crypt"


@pytest.fixture
def real_host(settings: Any) -> Any:
    with onboarded_local_host(settings, HOST, "fr-e2e-crypt") as host:
        yield host


def holds(path: str, needle: bytes) -> bool:
    """Whether the file contains `needle` anywhere (read in overlapping chunks)."""
    chunk, tail = 4 * 1024 * 1024, b""
    with open(path, "rb") as handle:
        while data := handle.read(chunk):
            if needle in tail + data:
                return True
            tail = data[-len(needle) :]
    return False


def qemu_img(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["qemu-img", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_an_encrypted_volume_never_holds_the_guests_data_in_clear_and_is_shredded(
    real_host: Host, make_tenant: Any, make_caller: Any, tmp_path: Path
) -> None:
    image = import_test_image_and_tiny_flavor()
    factories.volume_type("standard", max_size_gb=10)
    factories.volume_type("secure", max_size_gb=10, encrypted=True)
    tenant = make_tenant("acme")
    view = TenantView(make_caller(tenant, "member").client())
    client = view.client
    token = secrets.token_hex(8)
    marker = f"MARKER-{token}".encode()
    hv = hypervisor_for(real_host)
    pool = naming.storage_pool(HOST, "volumes")

    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        made = client.post(
            "/api/v1/instances",
            {"name": "writer", "flavor": "tiny", "image": str(image.pk),
             "user_data": WRITER_TWICE.replace("{token}", token)},
            format="json",
        )  # fmt: skip
        volumes = {}
        for name, volume_type in (("vault", "secure"), ("plain", "standard")):
            created = client.post(
                "/api/v1/volumes",
                {"name": name, "size_gb": 1, "volume_type": volume_type},
                format="json",
            )
            view.settled(created)
            volumes[name] = created.json()["volume"]["id"]
        vault, plain = volumes["vault"], volumes["plain"]
        vault_file = hv.storage_volume_info(pool, naming.volume(vault)).path
        plain_file = hv.storage_volume_info(pool, naming.volume(plain)).path
        # Made: a LUKS-encrypted qcow2, and no secret left on the host.
        info = qemu_img("info", "--output=json", vault_file)
        assert '"format": "luks"' in info.stdout, info.stdout
        assert vault not in hv.list_secrets()
        view.settled(made, timeout=180)
        writer = made.json()["instance"]["id"]
        view.says(writer, "ANDROMEDE-PROBE-BEGIN", timeout=90)

        # The encrypted volume: attached (its secret on the host meanwhile), written, detached.
        view.settled(view.attach(writer, vault))
        assert view.volume(vault)["status"] == "in-use"
        assert vault in hv.list_secrets()
        view.says(writer, "VOLTEST written-1")
        view.settled(view.detach(writer, vault))
        assert view.says(writer, "VOLTEST gone-1", timeout=40) == "VOLTEST gone-1"
        assert vault not in hv.list_secrets()  # gone from the host with the attachment

        # The plain one, for comparison: the same guest, the same marker.
        view.settled(view.attach(writer, plain))
        view.says(writer, "VOLTEST written-2")
        view.settled(view.detach(writer, plain))
        view.says(writer, "VOLTEST gone-2", timeout=40)

        # On the host's disk: the plain file holds the marker, the encrypted one does not…
        assert holds(plain_file, marker)
        assert not holds(vault_file, marker)
        # …though the encrypted volume read with its key does (the guest did write to it).
        secret_file = tmp_path / "passphrase"
        secret_file.write_bytes(crypto.volume_passphrase(Volume.objects.get(pk=vault)))
        secret_file.chmod(0o600)
        clear = tmp_path / "clear.raw"
        opened = qemu_img(
            "convert", "--object", f"secret,id=sec0,file={secret_file}", "--image-opts",
            f"driver=qcow2,file.filename={vault_file},encrypt.key-secret=sec0",
            "-O", "raw", str(clear),
        )  # fmt: skip
        assert opened.returncode == 0, opened.stderr
        assert clear.read_bytes()[:512].startswith(marker)
        clear.unlink()
        secret_file.unlink()

        # Extended while detached: libvirt grows it with its secret defined for the call only.
        view.settled(client.post(f"/api/v1/volumes/{vault}/extend", {"size_gb": 2},
                                 format="json"))  # fmt: skip
        assert hv.storage_volume_info(pool, naming.volume(vault)).capacity_bytes == 2 * 1024**3
        assert vault not in hv.list_secrets()

        # Shredded: the key is gone from the database, the volume refused.
        out = io.StringIO()
        call_command("tenant_shred", "acme", stdout=out, stderr=out)
        assert "1 key(s) destroyed" in out.getvalue(), out.getvalue()
        assert f"host {HOST}: 0 secret(s) undefined" in out.getvalue()
        assert AuditEvent.objects.filter(action="tenant.shred", tenant_id=tenant.pk).exists()
        refused = view.attach(writer, vault)
        assert refused.status_code == 409, refused.content
        assert refused.json()["error"]["code"] == "volume_key_shredded"
        with pytest.raises(crypto.VolumeKeyShredded):
            crypto.volume_passphrase(Volume.objects.get(pk=vault))
        assert vault not in hv.list_secrets()
        # qemu-img cannot open it without the key.
        for command in (
            ("convert", "-O", "raw", vault_file, str(clear)),
            ("dd", "-f", "qcow2", "-O", "raw", f"if={vault_file}", f"of={clear}", "count=1"),
        ):
            attempt = qemu_img(*command)
            assert attempt.returncode != 0, attempt.stdout
            assert "secret" in attempt.stderr.lower(), attempt.stderr
        assert not clear.exists() or not holds(str(clear), marker)

        view.settled(client.delete(f"/api/v1/instances/{writer}"))
        for volume_id in (vault, plain):
            view.settled(client.delete(f"/api/v1/volumes/{volume_id}"))
