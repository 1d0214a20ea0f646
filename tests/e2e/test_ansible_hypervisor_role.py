"""The hypervisor role, as an operator uses it on a new host: `make test` applied it to this
machine (`-c local`, scripts/libvirtd.sh); re-applied over SSH as root (the real sshd of
tests/support/sshd.py on 127.0.0.1, its host key pinned), it must find nothing to change.
Then the host is onboarded through the API with the pinned fingerprint, over that same sshd
(its storage made over SSH, libvirt reached as qemu+ssh), by a worker in its own process, and
a tenant boots an instance on it: the image goes to the host and the console comes back
through libvirt streams over SSH (libvirt's libssh transport crashed the worker there; we use
libssh2, docs/decisions.md).

And on a machine where libvirt has never been set up nor started (libvirt's directories and
/run private and empty, in a mount and network namespace of the test's own, as
tests/support/fault_lab.PrivateLibvirtd makes them): the role writes libvirt's configuration,
starts virtlogd and libvirtd without systemd, and a second run changes nothing."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

import pytest
from django.core.management import call_command

from compute.models import Instance
from hosts.services import zones
from iaas.audit import Actor
from iaas.celery import CONTROL_QUEUE, host_queue
from images.models import Image
from tests import factories
from tests.support import hypervisor_lab
from tests.support.fault_lab import (
    shared_database_url,
    stop_process,
    wait_for,
    worker_subprocess,
)
from tests.support.local_host import _network_names as network_names
from tests.support.local_host import _remove_leftovers as remove_leftovers
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
    return run_playbook("-i", str(inventory), str(ANSIBLE / "hypervisors.yml"), "-e", f"@{extra}")


def run_playbook(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), *args],
        env=os.environ | {"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def recap_of(output: str) -> dict[str, str]:
    [recap] = [m.groupdict() for m in RECAP.finditer(output)]
    return recap


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


def worker_tail(worker: subprocess.Popen[bytes] | None, log: Path) -> str:
    if worker is None:
        return ""
    status = "running" if worker.poll() is None else f"exited with {worker.returncode}"
    return (
        f"--- {log.name} ({status}), its last lines ---\n" + log.read_text(errors="replace")[-3000:]
    )


def boot_env(settings, tmp_path: Path) -> dict[str, str]:
    """The image store and tenant networks of this test, for the test process (which imports
    the image and places) and the host worker's (which copies the image to the host)."""
    settings.IMAGE_STORE_DIR = tmp_path / "image-store"
    settings.IMAGE_STORE_ZONE = "fr-e2e-ans"
    # Never the subnets of `make run`'s tenant networks, which may live on this libvirtd.
    settings.TENANT_NETWORK_SUPERNETS = ["198.51.100.128/25"]
    return {
        "ANDROMEDE_IMAGE_STORE_DIR": str(settings.IMAGE_STORE_DIR),
        "ANDROMEDE_IMAGE_STORE_ZONE": "fr-e2e-ans",
        "ANDROMEDE_TENANT_SUPERNETS": "198.51.100.128/25",
        "ANDROMEDE_INSTANCE_BOOT_TIMEOUT": "60",
        "ANDROMEDE_INSTANCE_STOP_TIMEOUT": "30",
    }


def boot_and_delete(make_caller, ssh_public_keys) -> float:
    """A tenant member boots the tiny test image, reads its ready line on the console, and
    deletes it; the monotonic time the delete was done."""
    call_command(
        "image_import", "andromede-test", str(hypervisor_lab.ensure_test_image()),
        "--disk-format", "qcow2", "--public",
    )  # fmt: skip
    image = Image.objects.get(name="andromede-test")
    factories.flavor("tiny", vcpus=1, memory_mb=256, disk_gb=1)
    client = make_caller(factories.tenant("acme"), "member").client()
    keypair = {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    assert client.post("/api/v1/keypairs", keypair, format="json").status_code == 201
    answer = client.post(
        "/api/v1/instances",
        {"name": "web-1", "flavor": "tiny", "image": str(image.pk), "keypair": "laptop"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    instance = answer.json()["instance"]
    url = f"/api/v1/instances/{instance['id']}"
    shown = settled(client, url, "building", 120, "the instance to leave building")
    assert shown["status"] == "active", shown
    assert Instance.objects.filter(pk=instance["id"], host__name=HOST).exists()
    ready = f"ANDROMEDE-READY instance-id={instance['id']} ip={instance['ip']}"
    wait_for(
        lambda: ready in client.get(f"{url}/console").json()["output"], 60,
        "the guest's ready line on its console", every=0.5,
    )  # fmt: skip
    assert client.delete(url).status_code == 202
    wait_for(lambda: client.get(url).status_code == 404, 60, "the instance to be deleted")
    return time.monotonic()


def test_the_role_reapplied_over_ssh_changes_nothing_then_the_host_onboards_and_boots(
    fresh_local_sshd, settings, make_caller, ssh_public_keys, tmp_path
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
    recap = recap_of(run.stdout)
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
    zones.zone_create(
        actor=Actor.system("e2e"), region="fr-e2e", name="fr-e2e-ans", site="lab",
        city="Paris", country="FR", jurisdiction="FR",
    )  # fmt: skip
    operator = make_caller(None, operator=True).client()
    # The worker in a process of its own, as on a control plane: it holds the SSH key, and
    # whatever happens to it cannot take the test process with it.
    env = os.environ | {
        "DATABASE_URL": shared_database_url(),
        "ANDROMEDE_SSH_PRIVATE_KEY": str(sshd.client_key_path),
        "ANDROMEDE_SSH_CONNECT_TIMEOUT": "5",
        "ANDROMEDE_HOST_KNOWN_HOSTS_DIR": str(settings.HOST_KNOWN_HOSTS_DIR),
    }
    log, host_log = tmp_path / "worker.log", tmp_path / "host-worker.log"
    worker = worker_subprocess(CONTROL_QUEUE, env, log)
    host_worker = None
    try:
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

        # Made over SSH by the worker, and libvirt answered it over qemu+ssh (its facts).
        assert sorted(p.name for p in storage.iterdir()) == ["images", "instances", "volumes"]
        assert (host["domain_type"], host["cpus"] > 0) == ("qemu", True), host
        assert {pool["role"] for pool in host["storage_pools"]} >= {"images", "instances"}
        onboarded_after = time.monotonic() - started

        # A tenant boots on it: its host worker, in a process of its own, reaches the host
        # only over SSH (qemu+ssh, the storage over SSH too).
        host_worker = worker_subprocess(
            host_queue(HOST), env | boot_env(settings, tmp_path), host_log
        )
        booted_after = boot_and_delete(make_caller, ssh_public_keys) - started
        print(
            f"\nthe role over SSH {applied_after:.1f} s; onboarded {onboarded_after:.1f} s; "
            f"booted, ready and deleted {booted_after:.1f} s"
        )
    except AssertionError as failed:
        raise AssertionError(
            f"{failed}\n{worker_tail(worker, log)}\n{worker_tail(host_worker, host_log)}"
        ) from None
    finally:
        stop_process(worker)
        stop_process(host_worker)
        remove_leftovers(HOST, networks_before)
        shutil.rmtree(storage, ignore_errors=True)


BARE_DIRS = {  # private directory → what it stands for on the bare machine
    "run": "/run",
    "etc": "/etc/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}


def pid_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def stop_daemons(run_dir: Path) -> list[str]:
    """SIGTERM the daemons whose pid files are in `run_dir` (checking each pid is that
    daemon); the names of those that were running."""
    stopped: list[str] = []
    for name in ("libvirtd", "virtlogd"):
        pid_file = run_dir / f"{name}.pid"
        if not pid_file.is_file():
            continue
        pid = int(pid_file.read_text().strip())
        comm = Path(f"/proc/{pid}/comm")
        if comm.is_file() and comm.read_text().strip() == name:
            os.kill(pid, signal.SIGTERM)
            wait_for(partial(pid_gone, pid), 15, f"{name} to stop")
            stopped.append(name)
    return stopped


def test_on_a_bare_machine_the_role_configures_and_starts_libvirt_without_systemd(tmp_path):
    bare = tmp_path / "bare"
    for private in BARE_DIRS:
        (bare / private).mkdir(parents=True)
    # QEMU's capabilities, probed once by the machine's libvirtd: seconds saved at start.
    with contextlib.suppress(OSError):  # none yet: the private libvirtd probes QEMU itself
        shutil.copytree("/var/cache/libvirt/qemu", bare / "cache" / "qemu", dirs_exist_ok=True)
    mounts = "\n".join(f"mount --bind {bare / d} {target}" for d, target in BARE_DIRS.items())
    playbook = shlex.join(
        [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-c", "local",
            "-i", str(ANSIBLE / "inventory" / "local" / "hosts.yml"),
            str(ANSIBLE / "hypervisors.yml"),
            "-e", f"hypervisor_storage_root={bare / 'storage'}",
        ]
    )  # fmt: skip
    script = tmp_path / "bare-machine.sh"
    script.write_text(
        "mount --make-rprivate / || exit 1\n" + mounts + " || exit 1\n"
        f"{playbook} > {tmp_path / 'first.out'} 2>&1\n"
        f"{playbook} > {tmp_path / 'second.out'} 2>&1\n"
        f"virsh -c qemu:///system version > {tmp_path / 'virsh.out'} 2>&1\n"
    )
    env = os.environ | {"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    try:
        subprocess.run(
            ["unshare", "--mount", "--net", "sh", str(script)], env=env, timeout=400, check=True
        )
        running = stop_daemons(bare / "run")
    finally:
        stop_daemons(bare / "run")
    first = (tmp_path / "first.out").read_text()
    recap = recap_of(first)
    assert (recap["failed"], recap["unreachable"]) == ("0", "0"), first[-4000:]
    changed = changed_task_names(first)
    for task in (
        "hypervisor : Libvirt's directories",
        "hypervisor : Create qemu.conf if it is missing",
        "hypervisor : Set qemu.conf's settings",
        "hypervisor : Set virtlogd.conf's limits",
        "hypervisor : Virtlogd and libvirtd run (no systemd)",
        f"hypervisor : Storage root {bare / 'storage'}",
    ):
        assert task in changed, f"{task!r} did not change: {changed}"
    qemu_conf = (bare / "etc" / "qemu.conf").read_text().splitlines()
    for line in ('user = "libvirt-qemu"', 'group = "kvm"', "dynamic_ownership = 1",
                 'stdio_handler = "logd"'):  # fmt: skip
        assert qemu_conf.count(line) == 1, qemu_conf
    assert "max_size = 2097152" in (bare / "etc" / "virtlogd.conf").read_text()
    assert "Running hypervisor: QEMU" in (tmp_path / "virsh.out").read_text()
    assert sorted(running) == ["libvirtd", "virtlogd"]
    assert (bare / "log" / "libvirtd.log").is_file()
    second = (tmp_path / "second.out").read_text()
    assert recap_of(second)["changed"] == "0", changed_task_names(second)
