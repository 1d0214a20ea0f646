"""The hypervisor role, as an operator uses it on a new host: `make test` applied it to this
machine (`-c local`, scripts/libvirtd.sh); re-applied over SSH as root (the real sshd of
tests/support/sshd.py on 127.0.0.1, its host key pinned), it must find nothing to change.
Then the host is onboarded through the API with the pinned fingerprint, over that same sshd
(qemu+ssh), and a tenant's instance boots on it from the project's test image."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker

from compute.models import Instance
from hosts.services import zones
from iaas.audit import Actor
from iaas.celery import CONTROL_QUEUE, app, host_queue
from tests.e2e.conftest import import_test_image_and_tiny_flavor
from tests.support import hypervisor_lab
from tests.support.fault_lab import wait_for
from tests.support.local_host import network_names, remove_leftovers
from tests.support.sshd import LocalSshd

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
HOST = "e2e-ansible"
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.M,
)


def apply_role_over_ssh(sshd: LocalSshd, workdir: Path) -> subprocess.CompletedProcess[str]:
    """ansible-playbook ansible/hypervisors.yml against 127.0.0.1:`sshd.port` as root, with
    the sshd's client key and its host key pinned (StrictHostKeyChecking), the role's
    variables as this machine's inventory sets them; the control plane's key is the one the
    sshd trusts, in the sshd's authorized_keys file."""
    key_type, key_base64, *_ = Path(f"{sshd.host_key_path}.pub").read_text().split()
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key_base64}\n")
    extra = workdir / "extra-vars.json"
    extra.write_text(
        json.dumps(
            {
                "ansible_connection": "ssh",
                "ansible_host": "127.0.0.1",
                "ansible_port": sshd.port,
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(sshd.client_key_path),
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
                ),
                "hypervisor_authorized_keys_path": str(sshd.authorized_keys),
                "hypervisor_controlplane_ssh_public_key": Path(
                    f"{sshd.client_key_path}.pub"
                ).read_text(),
            }
        )
    )
    inventory = ANSIBLE / "inventory" / "local" / "hosts.yml"
    playbook = ROOT / ".venv" / "bin" / "ansible-playbook"
    return subprocess.run(
        [str(playbook), "-i", str(inventory), str(ANSIBLE / "hypervisors.yml"), "-e", f"@{extra}"],
        env=os.environ | {"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def changed_task_names(output: str) -> list[str]:
    """The tasks of an ansible-playbook run (default callback) that reported a change."""
    names, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK [") : line.rfind("]")]
        elif line.startswith("changed:"):
            names.append(task)
    return names


def settled(client, url: str, transient: str, timeout: float, what: str) -> dict:
    """The resource at `url` once its `state` or `status` is no longer `transient`."""

    def body_if_settled() -> dict | None:
        body = client.get(url).json()
        return body if body.get("state", body.get("status")) != transient else None

    return wait_for(body_if_settled, timeout, what, every=0.5)


def test_the_role_reapplied_over_ssh_changes_nothing_then_the_host_onboards_and_boots(
    fresh_local_sshd, settings, make_tenant, make_caller, tmp_path
):
    sshd = fresh_local_sshd
    hypervisor_lab.ensure_libvirtd()
    # The role writes the control plane's key as the file's only line, mode 0600, in a
    # directory of mode 0700: the host as the role leaves it (the sshd trusts that same key).
    sshd.authorized_keys.chmod(0o600)
    sshd.authorized_keys.parent.chmod(0o700)

    started = time.monotonic()
    run = apply_role_over_ssh(sshd, tmp_path)
    applied_after = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    [recap] = [m.groupdict() for m in RECAP.finditer(run.stdout)]
    changed_tasks = changed_task_names(run.stdout)
    assert recap["changed"] == "0", f"the role changed: {changed_tasks}\n{run.stdout[-4000:]}"
    assert (recap["unreachable"], recap["failed"]) == ("0", "0")
    assert int(recap["ok"]) > 15
    assert "Accepted publickey for root from 127.0.0.1" in sshd.log_text()

    # Onboarding through the API, the host key pinned by its fingerprint.
    networks_before = network_names()
    remove_leftovers(HOST, networks_before)  # of a run killed before its cleanup
    storage = Path(tempfile.mkdtemp(prefix=f"andromede-{HOST}-", dir="/var/tmp"))
    storage.chmod(0o711)  # guests run as libvirt-qemu: their disks' path must be traversable
    settings.SSH_PRIVATE_KEY = sshd.client_key_path
    settings.SSH_CONNECT_TIMEOUT_SECONDS = 5
    settings.HOST_KNOWN_HOSTS_DIR = tmp_path / "known_hosts.d"
    settings.IMAGE_STORE_DIR = storage / "image-store"
    settings.IMAGE_STORE_ZONE = "fr-e2e-ans"
    settings.INSTANCE_BOOT_TIMEOUT_SECONDS = 60
    settings.TENANT_NETWORK_SUPERNETS = ["198.51.100.128/25"]
    zones.zone_create(
        actor=Actor.system("e2e"), region="fr-e2e", name="fr-e2e-ans", site="lab",
        city="Paris", country="FR", jurisdiction="FR",
    )  # fmt: skip
    operator = make_caller(None, operator=True).client()
    try:
        with start_worker(
            app, queues=[CONTROL_QUEUE, host_queue(HOST)], pool="solo", perform_ping_check=False
        ):
            registration = {
                "name": HOST, "zone": "fr-e2e-ans", "ssh_host": "127.0.0.1",
                "ssh_port": sshd.port, "ssh_username": "root",
                "libvirt_uri": f"qemu+ssh://root@127.0.0.1:{sshd.port}/system",
                "expected_fingerprint": sshd.host_key_fingerprint,
                "storage_root": str(storage), "domain_type": "qemu",
            }  # fmt: skip
            answer = operator.post("/api/v1/admin/hosts", registration, format="json")
            assert answer.status_code == 202, answer.content
            host_url = f"/api/v1/admin/hosts/{answer.json()['id']}"
            host = settled(operator, host_url, "pending", 60, "the onboarding to finish")
            assert host["state"] == "enabled", host
            assert host["ssh_host_key_fingerprint"] == sshd.host_key_fingerprint

            # A tenant boots an instance on it.
            image = import_test_image_and_tiny_flavor()
            client = make_caller(make_tenant("acme"), "member").client()
            answer = client.post(
                "/api/v1/instances",
                {"name": "first", "flavor": "tiny", "image": str(image.pk)},
                format="json",
            )
            assert answer.status_code == 202, answer.content
            instance = answer.json()["instance"]
            url = f"/api/v1/instances/{instance['id']}"
            shown = settled(client, url, "building", 120, "the instance to leave building")
            assert shown["status"] == "active", shown
            assert Instance.objects.filter(pk=instance["id"], host__name=HOST).exists()
            ready = f"ANDROMEDE-READY instance-id={instance['id']}"
            wait_for(
                lambda: ready in client.get(f"{url}/console").json()["output"],
                60,
                "the guest's ready line on its console",
                every=0.5,
            )
            whole = time.monotonic() - started
            print(f"\nthe role over SSH {applied_after:.1f} s; the whole test {whole:.1f} s")
    finally:
        remove_leftovers(HOST, networks_before)
        shutil.rmtree(storage, ignore_errors=True)
