"""libvirt's own SSH channel trusts only the pinned host key (M6): this machine's libvirtd
reached as `qemu+ssh://` through the real sshd on 127.0.0.1 (tests/support/sshd.py), whose far
side runs virt-ssh-helper (libvirt 9.0: present at /usr/bin/virt-ssh-helper; `nc` is not
installed and not needed). No paramiko on this path: the check is libvirt's (libssh2)."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from hosts.hypervisors import close_all, hypervisor_for
from hosts.models import Host
from hosts.services import zones
from hypervisor.base import DriverError
from iaas.audit import Actor
from tests.support import hypervisor_lab

pytestmark = [pytest.mark.django_db, pytest.mark.hypervisor]


def public_key(sshd) -> str:
    key_type, key_base64, *_ = Path(f"{sshd.host_key_path}.pub").read_text().split()
    return f"{key_type} {key_base64}"


@pytest.fixture
def ssh_host(fresh_local_sshd, settings, tmp_path):
    """A host whose libvirt URI is qemu+ssh to this machine through the test sshd, its key
    pinned to what the sshd presents now."""
    hypervisor_lab.ensure_libvirtd()
    settings.SSH_PRIVATE_KEY = fresh_local_sshd.client_key_path
    settings.SSH_CONNECT_TIMEOUT_SECONDS = 5
    settings.HOST_KNOWN_HOSTS_DIR = tmp_path / "known_hosts"
    zone = zones.zone_create(
        actor=Actor.system("tests"), region="fr-par", name="fr-par-1", site="lab", city="Paris",
        country="FR", jurisdiction="FR",
    )  # fmt: skip
    sshd = fresh_local_sshd
    return Host.objects.create(
        name="h-ssh", zone=zone, state=Host.State.ENABLED, domain_type="qemu",
        libvirt_uri=f"qemu+ssh://{sshd.username}@127.0.0.1:{sshd.port}/system",
        ssh_host="127.0.0.1", ssh_port=sshd.port, ssh_username=sshd.username,
        ssh_host_key_fingerprint=sshd.host_key_fingerprint, ssh_host_key=public_key(sshd),
        storage_root=str(tmp_path / "storage"),
    )  # fmt: skip


@pytest.fixture
def no_paramiko(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("paramiko used: the check must be libvirt's own")

    monkeypatch.setattr(paramiko, "Transport", refuse)


def test_libvirt_over_ssh_answers_through_the_pinned_key(
    ssh_host, fresh_local_sshd, settings, no_paramiko
):
    facts = hypervisor_for(ssh_host).facts()
    assert facts.cpus > 0
    assert "qemu" in facts.domain_types
    assert "Accepted publickey" in fresh_local_sshd.log_text()
    # the channel's known_hosts file holds exactly the pinned key, and nothing else
    [known_hosts] = Path(settings.HOST_KNOWN_HOSTS_DIR).iterdir()
    line = f"[127.0.0.1]:{fresh_local_sshd.port} {public_key(fresh_local_sshd)}\n"
    assert known_hosts.read_text() == line
    assert known_hosts.stat().st_mode & 0o077 == 0


def test_libvirt_over_ssh_refuses_a_host_whose_key_is_not_the_pin(
    ssh_host, fresh_local_sshd, no_paramiko
):
    fresh_local_sshd.restart(new_host_key=True)  # same address, another key: a MITM
    mark = fresh_local_sshd.log_mark()
    with pytest.raises(DriverError) as refused:
        hypervisor_for(ssh_host).facts()
    assert "HOST KEY VERIFICATION FAILED" in str(refused.value)
    assert "Accepted publickey" not in fresh_local_sshd.log_text(since=mark)


def test_a_host_pinned_by_fingerprint_only_gets_its_key_kept_if_it_matches(
    ssh_host, fresh_local_sshd
):
    """Hosts onboarded before the whole key was kept: the key presented is kept only when
    its fingerprint is the pin."""
    Host.objects.filter(pk=ssh_host.pk).update(ssh_host_key="")
    ssh_host.refresh_from_db()
    assert hypervisor_for(ssh_host).facts().cpus > 0
    assert Host.objects.get(pk=ssh_host.pk).ssh_host_key == public_key(fresh_local_sshd)

    close_all()
    fresh_local_sshd.restart(new_host_key=True)
    Host.objects.filter(pk=ssh_host.pk).update(ssh_host_key="")
    ssh_host.refresh_from_db()
    with pytest.raises(DriverError) as refused:
        hypervisor_for(ssh_host)
    assert "no pinned SSH host key matches" in str(refused.value)
    assert Host.objects.get(pk=ssh_host.pk).ssh_host_key == ""
