"""Host trust (M6) and the API process's privileges (M11): onboarding over SSH against a real
sshd on 127.0.0.1 (tests/support/sshd.py), through the API and a worker, and through
manage.py host_add. The hypervisor behind it is libvirt's fake (test:///default)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import libvirt
import paramiko
import pytest
from django.core.management import CommandError, call_command

from hosts.models import Host, StoragePool
from hosts.services import zones
from hosts.services.onboarding import host_onboarding_run
from iaas.audit import Actor
from iaas.models import AuditEvent
from tests.support.sshd import keygen

pytestmark = pytest.mark.django_db
TEST_URI = "test:///default"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def operator(make_caller):
    return make_caller(None, operator=True)


@pytest.fixture
def zone(db):
    return zones.zone_create(
        actor=Actor.system("tests"), region="fr-par", name="fr-par-1", site="DC Paris 1",
        city="Paris", country="FR", jurisdiction="FR",
    )  # fmt: skip


@pytest.fixture
def sshd_host(fresh_local_sshd, settings, tmp_path):
    """The control plane's SSH key (workers') is the client key the test sshd authorises."""
    settings.SSH_PRIVATE_KEY = fresh_local_sshd.client_key_path
    settings.SSH_CONNECT_TIMEOUT_SECONDS = 3
    settings.HOST_KNOWN_HOSTS_DIR = tmp_path / "known_hosts"
    return fresh_local_sshd


def post_host(client, sshd, storage_root, **overrides):
    body = {
        "name": "h01", "zone": "fr-par-1", "libvirt_uri": TEST_URI, "ssh_host": "127.0.0.1",
        "ssh_port": sshd.port, "storage_root": str(storage_root),
    } | overrides  # fmt: skip
    return client.post("/api/v1/admin/hosts", body, format="json")


def host_state(host_id) -> dict:
    return dict(
        Host.objects.filter(pk=host_id).values(
            "state", "state_reason", "ssh_host_key_fingerprint", "ssh_host_key",
            "ssh_host_key_seen_fingerprint", "ssh_host_key_seen", "onboarding_error_code",
        )[0]
    )  # fmt: skip


# --- With the expected fingerprint ----------------------------------------------------------


def test_with_the_expected_fingerprint_a_worker_pins_it_prepares_storage_and_enables(
    operator, zone, sshd_host, tmp_path
):
    root = tmp_path / "storage"
    client = operator.client()
    answer = post_host(client, sshd_host, root, expected_fingerprint=sshd_host.host_key_fingerprint)
    assert answer.status_code == 202, answer.content
    assert answer.json()["state"] == "pending"
    assert not root.exists()  # the API reached nothing
    assert "Accepted publickey" not in sshd_host.log_text()

    assert host_onboarding_run(answer.json()["id"]) == "enabled"
    body = client.get(f"/api/v1/admin/hosts/{answer.json()['id']}").json()
    assert body["state"] == "enabled"
    assert body["ssh_host_key_fingerprint"] == sshd_host.host_key_fingerprint
    # the whole key is kept: libvirt's SSH channel is pinned with it
    public = Path(f"{sshd_host.host_key_path}.pub").read_text().split()
    assert Host.objects.get(pk=body["id"]).ssh_host_key == f"{public[0]} {public[1]}"
    # made over SSH by the host's own shell, by the worker
    assert sorted(p.name for p in root.iterdir()) == ["images", "instances", "volumes"]
    assert "Accepted publickey" in sshd_host.log_text()


def test_a_presented_key_that_differs_puts_the_host_in_error_and_sends_no_credential(
    operator, zone, sshd_host, tmp_path
):
    pinned = sshd_host.host_key_fingerprint
    sshd_host.restart(new_host_key=True)
    mark = sshd_host.log_mark()
    answer = post_host(
        operator.client(), sshd_host, tmp_path / "never", expected_fingerprint=pinned
    )
    assert answer.status_code == 202
    assert host_onboarding_run(answer.json()["id"]) == "error"
    host = Host.objects.get(pk=answer.json()["id"])
    assert (host.state, host.onboarding_error_code) == ("error", "host_key_mismatch")
    assert pinned in host.state_reason
    assert sshd_host.host_key_fingerprint in host.state_reason
    assert host.ssh_host_key == ""
    assert StoragePool.objects.count() == 0
    assert not (tmp_path / "never").exists()
    assert "Accepted publickey" not in sshd_host.log_text(since=mark)
    refused = AuditEvent.objects.get(action="host.onboard", outcome="refused")
    assert refused.details["code"] == "host_key_mismatch"
    assert refused.details["presented"] == sshd_host.host_key_fingerprint
    # and the scheduler's only candidates are enabled hosts: this one is not
    assert not Host.objects.filter(state="enabled").exists()


# --- Without it: the key first seen waits for the operator's confirmation ------------------


def test_without_a_fingerprint_the_key_seen_waits_for_the_operator_and_nothing_is_enabled(
    operator, zone, sshd_host, tmp_path
):
    root = tmp_path / "storage"
    client = operator.client()
    answer = post_host(client, sshd_host, root)
    assert answer.status_code == 202
    host_id = answer.json()["id"]
    assert host_onboarding_run(host_id) == "awaiting_confirmation"
    body = client.get(f"/api/v1/admin/hosts/{host_id}").json()
    assert body["state"] == "awaiting_confirmation"
    assert body["ssh_host_key_seen_fingerprint"] == sshd_host.host_key_fingerprint
    assert body["ssh_host_key_fingerprint"] == ""  # not trusted yet
    assert body["storage_pools"] == []
    assert not root.exists()
    assert "Accepted publickey" not in sshd_host.log_text()  # no credential sent yet
    seen = AuditEvent.objects.get(action="host.key_seen")
    assert seen.details["presented"] == sshd_host.host_key_fingerprint
    # a second delivery of the task changes nothing
    assert host_onboarding_run(host_id) == "awaiting_confirmation"


def test_confirming_another_fingerprint_is_a_conflict_and_changes_nothing(
    operator, zone, sshd_host, tmp_path
):
    client = operator.client()
    host_id = post_host(client, sshd_host, tmp_path).json()["id"]
    host_onboarding_run(host_id)
    before = host_state(host_id)
    other = keygen(tmp_path / "other")
    from tests.support.sshd import keygen_fingerprint

    wrong = keygen_fingerprint(Path(f"{other}.pub"))
    answer = client.post(
        f"/api/v1/admin/hosts/{host_id}/confirm", {"fingerprint": wrong}, format="json"
    )
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "host_key_mismatch"
    assert host_state(host_id) == before
    [refused] = AuditEvent.objects.filter(action="host.confirm")
    assert (refused.outcome, refused.details["code"]) == ("refused", "host_key_mismatch")


def test_confirming_the_key_seen_pins_it_and_a_worker_then_enables_the_host(
    operator, zone, sshd_host, tmp_path
):
    root = tmp_path / "storage"
    client = operator.client()
    host_id = post_host(client, sshd_host, root).json()["id"]
    host_onboarding_run(host_id)
    answer = client.post(
        f"/api/v1/admin/hosts/{host_id}/confirm",
        {"fingerprint": sshd_host.host_key_fingerprint},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["state"] == "pending"
    assert answer.json()["ssh_host_key_fingerprint"] == sshd_host.host_key_fingerprint
    assert host_onboarding_run(host_id) == "enabled"
    host = Host.objects.get(pk=host_id)
    assert host.state == "enabled"
    assert host.ssh_host_key_fingerprint == sshd_host.host_key_fingerprint
    assert (host.ssh_host_key_seen_fingerprint, host.ssh_host_key_seen) == ("", "")
    assert sorted(p.name for p in root.iterdir()) == ["images", "instances", "volumes"]
    confirmed = AuditEvent.objects.get(action="host.confirm")
    assert confirmed.actor_id == operator.user.pk
    # confirming twice: nothing to confirm any more
    again = client.post(
        f"/api/v1/admin/hosts/{host_id}/confirm",
        {"fingerprint": sshd_host.host_key_fingerprint},
        format="json",
    )
    assert again.status_code == 409


def test_a_key_that_changes_after_confirmation_is_refused_by_the_worker(
    operator, zone, sshd_host, tmp_path
):
    client = operator.client()
    host_id = post_host(client, sshd_host, tmp_path / "never").json()["id"]
    host_onboarding_run(host_id)
    client.post(
        f"/api/v1/admin/hosts/{host_id}/confirm",
        {"fingerprint": sshd_host.host_key_fingerprint},
        format="json",
    )
    sshd_host.restart(new_host_key=True)  # a man in the middle between confirm and work
    assert host_onboarding_run(host_id) == "error"
    assert Host.objects.get(pk=host_id).onboarding_error_code == "host_key_mismatch"
    assert not (tmp_path / "never").exists()


# --- What goes wrong, said clearly --------------------------------------------------------


def test_an_unreachable_ssh_host_ends_in_error_with_the_address(
    operator, zone, sshd_host, tmp_path
):
    port = sshd_host.port
    sshd_host.stop()
    host_id = post_host(operator.client(), sshd_host, tmp_path).json()["id"]
    assert host_onboarding_run(host_id) == "error"
    host = Host.objects.get(pk=host_id)
    assert host.onboarding_error_code == "host_unreachable"
    assert f"127.0.0.1:{port}" in host.state_reason
    assert AuditEvent.objects.filter(action="host.onboard", outcome="refused").count() == 1


def test_a_host_that_refuses_our_key_says_which_key_to_install(
    operator, zone, sshd_host, tmp_path, settings
):
    settings.SSH_PRIVATE_KEY = keygen(tmp_path / "stranger")
    host_id = post_host(
        operator.client(), sshd_host, tmp_path, expected_fingerprint=sshd_host.host_key_fingerprint
    ).json()["id"]
    assert host_onboarding_run(host_id) == "error"
    host = Host.objects.get(pk=host_id)
    assert host.onboarding_error_code == "ssh_authentication_failed"
    assert "authorized_keys" in host.state_reason


# --- M11: the API process reaches no host and reads no key ----------------------------------


@pytest.fixture
def no_hypervisor_in_this_request(monkeypatch, sshd_host):
    """Fail if anything opens a libvirt connection, starts an SSH transport or opens the SSH
    private key while the API handles a request."""
    opened: list[str] = []

    def refuse(name):
        def call(*args, **kwargs):
            opened.append(name)
            raise AssertionError(f"{name} called in the API process")

        return call

    key = str(sshd_host.client_key_path)
    active = [True]

    def audit(event, args):
        if active[0] and event == "open" and args and str(args[0]) == key:
            opened.append(f"open {key}")

    sys.addaudithook(audit)  # cannot be removed: `active` turns it off after the test
    with monkeypatch.context() as patch:  # undone before the fake hypervisor's reset
        for name in ("open", "openAuth", "openReadOnly"):
            patch.setattr(libvirt, name, refuse(f"libvirt.{name}"))
        patch.setattr(paramiko, "Transport", refuse("paramiko.Transport"))
        yield opened
    active[0] = False


def test_the_api_onboarding_request_reaches_no_host_and_reads_no_key(
    operator, zone, sshd_host, tmp_path, no_hypervisor_in_this_request
):
    client = operator.client()
    sshd_host.wait_for_log("Connection closed by")  # the fixture's own "is it listening?"
    mark = sshd_host.log_mark()
    answer = post_host(client, sshd_host, tmp_path)
    assert answer.status_code == 202
    listed = client.get("/api/v1/admin/hosts")
    assert listed.status_code == 200
    assert no_hypervisor_in_this_request == []
    assert "Connection from" not in sshd_host.log_text(since=mark)


def test_the_api_process_holds_no_ssh_key_and_refuses_hypervisor_access(tmp_path):
    """The gunicorn entry point (iaas.wsgi), in a process of its own, with the worker's
    environment: the key path is not even read, and a driver cannot be made."""
    code = (
        "import iaas.wsgi\n"
        "from django.conf import settings\n"
        "from hosts import hypervisors\n"
        "print('key', settings.SSH_PRIVATE_KEY, settings.HYPERVISOR_ACCESS)\n"
        "try:\n"
        "    hypervisors.hypervisor_for_uri('qemu:///system')\n"
        "except hypervisors.NoHypervisorAccess as exc:\n"
        "    print('refused', exc)\n"
        "try:\n"
        "    hypervisors.ssh_endpoint('h', 22, 'root')\n"
        "except hypervisors.NoHypervisorAccess as exc:\n"
        "    print('refused', exc)\n"
    )
    env = dict(
        os.environ,
        ANDROMEDE_SSH_PRIVATE_KEY=str(tmp_path / "id_ed25519"),
        ANDROMEDE_HYPERVISOR_ACCESS="1",
        ANDROMEDE_VAR_DIR=str(tmp_path / "var"),
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "key None False"
    assert lines[1].startswith("refused libvirt: this process has no hypervisor access")
    assert lines[2].startswith("refused ssh h: this process has no hypervisor access")


# --- manage.py host_add: the operators' command, inline ---------------------------------------


def test_host_add_without_a_fingerprint_prints_the_key_seen_and_records_nothing(
    zone, sshd_host, tmp_path
):
    with pytest.raises(CommandError) as refused:
        call_command(
            "host_add", "h01", zone="fr-par-1", uri=TEST_URI,
            ssh=f"127.0.0.1:{sshd_host.port}", storage_root=str(tmp_path / "never"),
        )  # fmt: skip
    message = str(refused.value)
    assert "host_key_unconfirmed" in message
    assert f"--fingerprint {sshd_host.host_key_fingerprint}" in message
    assert Host.objects.count() == 0
    assert not (tmp_path / "never").exists()
    assert "Accepted publickey" not in sshd_host.log_text()


def test_host_add_with_the_fingerprint_onboards_the_host(zone, sshd_host, tmp_path):
    out = io.StringIO()
    call_command(
        "host_add", "h01", zone="fr-par-1", uri=TEST_URI, ssh=f"127.0.0.1:{sshd_host.port}",
        fingerprint=sshd_host.host_key_fingerprint, storage_root=str(tmp_path), stdout=out,
    )  # fmt: skip
    assert "host h01 enabled" in out.getvalue()
    host = Host.objects.get(name="h01")
    assert host.state == "enabled"
    assert host.ssh_host_key_fingerprint == sshd_host.host_key_fingerprint
    assert host.ssh_host_key


def test_host_add_refuses_qemu_tcp(zone):
    with pytest.raises(CommandError) as refused:
        call_command(
            "host_add", "h02", zone="fr-par-1", uri="qemu+tcp://h2.example/system",
            ssh="root@h2.example",
        )  # fmt: skip
    assert "qemu+tcp is refused" in str(refused.value)
    assert Host.objects.count() == 0


def test_make_run_starts_the_api_without_the_key_and_the_worker_with_it():
    """scripts/supervise.py: gunicorn is not even told where the key is."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("supervise", ROOT / "scripts" / "supervise.py")
    assert spec is not None
    assert spec.loader is not None
    supervise = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(supervise)
    env = {"PATH": "/usr/bin", "ANDROMEDE_SSH_PRIVATE_KEY": "/srv/key"}
    api = supervise.env_for("api", env)
    assert "ANDROMEDE_SSH_PRIVATE_KEY" not in api
    assert api["ANDROMEDE_HYPERVISOR_ACCESS"] == "0"
    assert supervise.env_for("worker", env) == env
    assert supervise.env_for("beat", env) == env


def test_a_host_whose_onboarding_never_finished_can_be_deleted_an_onboarded_one_cannot(
    operator, zone, sshd_host, tmp_path
):
    client = operator.client()
    host_id = post_host(client, sshd_host, tmp_path).json()["id"]
    pending = client.delete(f"/api/v1/admin/hosts/{host_id}")
    assert pending.status_code == 409  # a worker may be on it
    host_onboarding_run(host_id)  # awaiting_confirmation: the operator does not confirm
    assert client.delete(f"/api/v1/admin/hosts/{host_id}").status_code == 204
    assert not Host.objects.filter(pk=host_id).exists()
    assert AuditEvent.objects.get(action="host.delete", outcome="success").target_id == host_id
    assert host_onboarding_run(host_id) == "deleted"  # a late delivery of its task

    enabled = post_host(
        client, sshd_host, tmp_path, name="h02", expected_fingerprint=sshd_host.host_key_fingerprint
    ).json()["id"]
    assert host_onboarding_run(enabled) == "enabled"
    refused = client.delete(f"/api/v1/admin/hosts/{enabled}")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "wrong_state"
    assert Host.objects.get(pk=enabled).state == "enabled"
    assert StoragePool.objects.filter(host_id=enabled).count() == 3


def test_a_host_recorded_with_qemu_tcp_before_the_rules_is_never_connected(zone, settings):
    from hosts.hypervisors import hypervisor_for
    from hypervisor.base import DriverError

    legacy = Host.objects.create(
        name="old", zone=zone, libvirt_uri="qemu+tcp://127.0.0.1/system", storage_root="/x",
        state=Host.State.ENABLED, domain_type="qemu",
    )  # fmt: skip
    with pytest.raises(DriverError) as refused:
        hypervisor_for(legacy)
    assert "qemu+tcp is refused" in str(refused.value)
