"""Guests you can log into (issue 10, item 5): through the API only, a tenant boots the test
image with its keypair and logs in over SSH with its private key; the guest's host key is
pinned from what the guest printed on its serial console (read through the API). The guest
runs a user-data probe script and shows its output and exit code on the console.

Network path: today's isolated libvirt network, whose gateway (.1) is a bridge in this
machine's namespace, so the test reaches the guest's address directly."""

from __future__ import annotations

import gzip
import re
import subprocess
import time
from pathlib import Path

import paramiko
import pytest
from celery.contrib.testing.worker import start_worker

from hosts.models import Host
from iaas.celery import app, host_queue
from tests.e2e.conftest import import_test_image_and_tiny_flavor
from tests.support import hypervisor_lab, ssh_guest
from tests.support.local_host import onboarded_local_host
from tests.support.sshd import keygen

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]
HOST = "e2e-guest-ssh"  # its own name: the cleanup removes this host's domains only

PROBE = """#!/bin/sh
echo "probe on $(hostname) as $(id -u)"
ip -o -4 addr show eth0
exit 7
"""


@pytest.fixture
def real_host(settings):
    # onboarded_local_host's supernet (198.51.100.128/25) keeps off the machine's uplink
    # (192.0.2.0/24 here), its registries (203.0.113.80) and make run's provider range.
    with onboarded_local_host(settings, HOST, "fr-e2e-ssh") as host:
        yield host


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def log_in(
    ip: str, host_key: ssh_guest.GuestHostKey, key: Path | None = None, password: str = ""
) -> None:
    """One SSH login as root, with a key or a password only, then out."""
    client = paramiko.SSHClient()
    client.get_host_keys().add(ip, host_key.key_type, host_key.pkey())
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            ip, username="root", key_filename=str(key) if key else None,
            password=password or None, look_for_keys=False, allow_agent=False, timeout=10,
        )  # fmt: skip
    finally:
        client.close()


def test_a_tenant_logs_into_its_instance_with_its_key(
    real_host: Host, make_tenant, make_caller, tmp_path: Path
):
    image = import_test_image_and_tiny_flavor()
    tenant_key = keygen(tmp_path / "tenant")
    stranger_key = keygen(tmp_path / "stranger")
    client = make_caller(make_tenant("acme"), "member").client()
    answer = client.post(
        "/api/v1/keypairs",
        {"name": "laptop", "public_key": tenant_key.with_suffix(".pub").read_text()},
        format="json",
    )
    assert answer.status_code == 201, answer.content

    with start_worker(app, queues=[host_queue(HOST)], pool="solo", perform_ping_check=False):
        started = time.monotonic()
        answer = client.post(
            "/api/v1/instances",
            {"name": "web-1", "flavor": "tiny", "image": str(image.pk), "keypair": "laptop",
             "user_data": PROBE},
            format="json",
        )  # fmt: skip
        assert answer.status_code == 202, answer.content
        instance_id, ip = answer.json()["instance"]["id"], answer.json()["instance"]["ip"]
        url = f"/api/v1/instances/{instance_id}"

        def console() -> str:
            return str(client.get(f"{url}/console").json()["output"])

        ready = f"ANDROMEDE-READY instance-id={instance_id} ip={ip}"
        wait_for(lambda: ready in console(), 120, "the ready line")
        ready_after = time.monotonic() - started
        text = console()
        # The SSH line comes before READY: READY promises a guest that answers SSH.
        assert text.index("ANDROMEDE-SSH port=22 ") < text.index(ready), text[-3000:]
        host_key = ssh_guest.host_key_from_console(text)  # its fingerprint checked too
        assert "ANDROMEDE-ERROR" not in text, text[-3000:]

        login_started = time.monotonic()
        with ssh_guest.connect(ip, host_key, "root", tenant_key) as ssh:
            login_seconds = time.monotonic() - login_started
            assert ssh_guest.run(ssh, "id -u") == (0, "0\n", "")
            status, cmdline, _ = ssh_guest.run(ssh, "cat /proc/cmdline")
            assert status == 0
            assert "console=ttyS0" in cmdline, cmdline
            status, addresses, _ = ssh_guest.run(ssh, "ip -o -4 addr show")
            assert f"inet {ip}/" in addresses, addresses
            # exactly the tenant's key is authorised (from the seed's meta-data)
            status, keys, _ = ssh_guest.run(ssh, "cat /root/.ssh/authorized_keys")
            assert keys.split() == tenant_key.with_suffix(".pub").read_text().split()
        print(
            f"\nPOST → ready line {ready_after:.1f} s; SSH login {login_seconds:.2f} s; "
            f"host key {host_key.fingerprint}"
        )

        # Key only: another key and any password are refused, and so is a server whose host
        # key is not the one the console showed.
        with pytest.raises(paramiko.AuthenticationException):
            log_in(ip, host_key, key=stranger_key)
        with pytest.raises(paramiko.AuthenticationException):
            log_in(ip, host_key, password="root")
        other_host = ssh_guest.GuestHostKey(
            "ssh-ed25519", stranger_key.with_suffix(".pub").read_text().split()[1]
        )
        with pytest.raises(paramiko.BadHostKeyException):
            log_in(ip, other_host, key=tenant_key)

        # The probe ran after READY, its output and exit code between its markers.
        probe = wait_for(
            lambda: re.search(
                r"^ANDROMEDE-PROBE-BEGIN\r?\n(.*?)^ANDROMEDE-PROBE-END exit=(\S+)",
                console(),
                re.S | re.M,
            ),
            30,
            "the probe's end line",
        )
        assert probe.group(2) == "7"
        assert "probe on web-1 as 0" in probe.group(1)
        assert f"inet {ip}/" in probe.group(1)

        assert client.delete(url).status_code == 202
        wait_for(lambda: client.get(url).status_code == 404, 60, "the instance to be deleted")


def image_tree(image: Path, into: Path) -> Path:
    """The test image's initramfs, unpacked from its boot disk into `into` (the very files a
    guest runs)."""
    raw = into / "disk.raw"
    subprocess.run(
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(image), str(raw)],
        check=True, timeout=60,
    )  # fmt: skip
    initrd = subprocess.run(
        ["mcopy", "-n", "-i", str(raw), "::initrd.gz", "-"],
        check=True, timeout=60, stdout=subprocess.PIPE,
    ).stdout  # fmt: skip
    root = into / "root"
    root.mkdir()
    subprocess.run(
        ["cpio", "-id", "--quiet"], input=gzip.decompress(initrd), cwd=root, check=True,
        timeout=60,
    )  # fmt: skip
    return root


def test_only_plain_keys_from_the_seed_are_authorised(tmp_path: Path):
    """What the image's /init puts in authorized_keys, run in the image's own files (chroot,
    its busybox): keys from meta-data (JSON strings, as compute/cloudinit.py writes them) and
    from user-data (block and flow lists, quoted or not); never a line with options such as
    `command=` (a seed must not be able to turn a login into something else), nor garbage."""
    root = image_tree(hypervisor_lab.ensure_test_image(), tmp_path)
    init = (Path(__file__).resolve().parents[2] / "scripts/test-image/init").read_text()
    function = re.search(r"^authorized_keys\(\) \{\n.*?^\}\n", init, re.S | re.M)
    assert function is not None
    (root / "keys.sh").write_text(function.group(0) + "authorized_keys\n")
    ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBoot+smoke+test+key+only"
    (root / "seed").mkdir(exist_ok=True)
    (root / "seed" / "meta-data").write_text(
        'instance-id: "i-1"\npublic-keys:\n'
        f'  - "{ed}1 tenant@laptop"\n'
        '  - "command=\\"/bin/sh\\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad bad@x"\n'
        'local-hostname: "web-1"\n'
    )
    (root / "seed" / "user-data").write_text(
        "#cloud-config\n"
        "ssh_authorized_keys:\n"
        f"  - {ed}2 block@x\n"
        f"  - '{ed}3 quoted@x'\n"
        "  - not a key at all\n"
        "users:\n"
        f'  - name: x\n    ssh_authorized_keys: ["{ed}4 flow@x", {ed}5]\n'
    )
    out = subprocess.run(
        ["chroot", str(root), "/bin/sh", "/keys.sh"],
        check=True, timeout=30, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert out.splitlines() == [
        f"{ed}1 tenant@laptop",
        f"{ed}2 block@x",
        f"{ed}3 quoted@x",
        f"{ed}4 flow@x",
        f"{ed}5",
    ]
