"""Shared fixtures: tenants, users with roles, tokens and API clients, an image store and the
`cloud` the compute and network tests act in, all built through the services (so they are
audited like real ones; tests/factories.py has the plain functions behind them)."""

from __future__ import annotations

import gc
import os
import pwd
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import libvirt
import paramiko
import pytest
from django.test import override_settings

from hypervisor.ssh import SshEndpoint, SshSession, open_session
from tenants.models import Tenant
from tests import factories
from tests.support.callers import Caller, caller_maker
from tests.support.ceph_lab import ceph_lab  # noqa: F401 - the session's Ceph lab, a fixture
from tests.support.mfa import sign_in_verified
from tests.support.ovn_lab import ovn_lab  # noqa: F401 - the session's OVN lab, a fixture
from tests.support.sshd import LocalSshd, ssh_endpoint_for

# libvirt's fake hypervisor (test:///default) may be a host in the tests only (production
# refuses it: hosts.libvirt_uris); subprocesses (manage.py in the migration tests) inherit it.
os.environ["ANDROMEDE_ALLOW_TEST_HYPERVISOR"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _test_hypervisor_allowed() -> None:
    """The same for this process, whenever its settings were loaded."""
    from django.conf import settings

    settings.ALLOW_TEST_HYPERVISOR = True


#: What libvirt's test:///default holds when fresh: one pool, one domain, one network.
FRESH_FAKE = (["default-pool"], ["test"], ["default"])


def _fake_hypervisor_state() -> tuple[list[str], list[str], list[str]]:
    """What test:///default holds now (opening it while another connection is open shares
    that connection's state; with none open it is fresh, and closing it resets it again)."""
    conn = libvirt.open("test:///default")
    try:
        return (
            sorted(pool.name() for pool in conn.listAllStoragePools()),
            sorted(domain.name() for domain in conn.listAllDomains()),
            sorted(network.name() for network in conn.listAllNetworks()),
        )
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def _fresh_fake_hypervisor() -> Iterator[None]:
    """Each test starts with libvirt's test:///default in its initial state: closing the
    process's kept drivers closes the last connection to it, which resets it."""
    yield
    from hosts.hypervisors import close_all

    close_all()
    if _fake_hypervisor_state() != FRESH_FAKE:
        # libvirt closes a connection only once no domain or pool object refers to it, and
        # such objects caught in a failed call's traceback live until the garbage collector
        # frees them: until then the next test would find this one's pools and domains.
        gc.collect()


@pytest.fixture
def make_tenant(db: None) -> Callable[..., Tenant]:
    """make_tenant(slug, residency=…) → a new tenant, made by the service."""
    return factories.tenant


@pytest.fixture
def make_caller(db: None) -> Callable[..., Caller]:
    """make_caller(tenant, role) → a new user, member of `tenant` with `role`, and a token
    with the same role. make_caller(None, operator=True) → an operator with an operator token."""
    return caller_maker()


@pytest.fixture(scope="session")
def ssh_public_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Real OpenSSH public keys made by ssh-keygen: one per accepted type, and refused ones."""
    folder: Path = tmp_path_factory.mktemp("sshkeys")
    keys = {}
    specs = {
        "ed25519": ["-t", "ed25519"],
        "ecdsa": ["-t", "ecdsa", "-b", "256"],
        "rsa2048": ["-t", "rsa", "-b", "2048"],
        "rsa1024": ["-t", "rsa", "-b", "1024"],
    }
    for name, args in specs.items():
        path = folder / name
        subprocess.run(
            ["ssh-keygen", "-q", "-N", "", "-C", f"{name}@test", "-f", str(path), *args],
            check=True,
        )
        keys[name] = (path.with_suffix(".pub")).read_text().strip()
    return keys


@pytest.fixture
def image_store(db: None, settings: Any, tmp_path: Path) -> Path:
    """The default image store, in a directory of the test's own (uploads and snapshots write
    their files there), in a French zone of its own (settings.IMAGE_STORE_ZONE)."""
    path = tmp_path / "image-store"
    settings.IMAGE_STORE_DIR = path
    factories.zone(settings.IMAGE_STORE_ZONE, region="store")
    return path


@pytest.fixture(scope="session")
def tiny_qcow2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (empty) 1 MiB qcow2 made once per session, for images that must be active."""
    return factories.qcow2(tmp_path_factory.mktemp("images") / "tiny.qcow2")


@pytest.fixture
def cloud(
    db: None,
    image_store: Path,
    tiny_qcow2: Path,
    make_tenant: Callable[..., Tenant],
    make_caller: Callable[..., Caller],
    ssh_public_keys: dict[str, str],
) -> SimpleNamespace:
    """A French zone with one host on the fake hypervisor, the flavor `small`, an active
    public image, and a member of tenant `acme` (its API client) with the keypair `laptop`."""
    zone = factories.zone("fr-par-1")
    host = factories.host("h01", zone)
    flavor = factories.flavor("small", vcpus=1, memory_mb=256, disk_gb=1)
    image = factories.public_image(tiny_qcow2)
    tenant = make_tenant("acme")
    member = make_caller(tenant, "member")
    factories.keypair(tenant, ssh_public_keys["ed25519"], "laptop")
    return SimpleNamespace(
        zone=zone, host=host, flavor=flavor, image=image, tenant=tenant, member=member,
        client=member.client(),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    """No API rate limits in tests, except where a test sets them (tests/tenants/
    test_throttling.py): hundreds of requests from one client are the norm here."""
    settings.API_THROTTLE_RATES = dict.fromkeys(settings.API_THROTTLE_RATES)


@pytest.fixture
def admin_client(client: Any, admin_user: Any) -> Any:
    """pytest-django's operator client, signed in with a second factor as the admin requires."""
    return sign_in_verified(client, admin_user)


@pytest.fixture(autouse=True)
def _audit_anchor_files(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test signs and reads audit checkpoints in a folder of its own (a key made on
    first use), never the checkout's var/: a `make run` there must not fail the tests."""
    folder = tmp_path_factory.mktemp("audit-anchor")
    settings.AUDIT_SIGNING_KEY = folder / "audit-signing.key"
    settings.AUDIT_SIGNING_KEY_CREATE = True
    settings.AUDIT_VERIFY_KEY = None
    settings.AUDIT_CHECKPOINT_FILE = folder / "audit-checkpoints.jsonl"
    return folder


@pytest.fixture(autouse=True)
def _volume_master_key(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test wraps volume keys with a master key of its own, made on first use in a
    folder of its own (volumes.crypto), and writes its shreds to a ledger there, never the
    checkout's var/."""
    folder = tmp_path_factory.mktemp("volume-master-key")
    settings.VOLUME_MASTER_KEY = None
    settings.VOLUME_MASTER_KEY_FILE = folder / "volume-master.key"
    settings.VOLUME_MASTER_KEY_CREATE = True
    settings.SHRED_LEDGER_FILE = folder / "shred-ledger.jsonl"
    return folder


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hasher(django_test_environment: None) -> Iterator[None]:
    """Every test hashes passwords with MD5: Django's PBKDF2 (1,000,000 iterations) costs
    0.6 s a password on these machines and the suite makes thousands of users, which came to
    minutes of CI. Nothing here tests the hasher's strength (production keeps Django's
    default); never in production."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


# ---- A real OpenSSH server on 127.0.0.1 (tests/support/sshd.py) ----------------------------


@pytest.fixture(scope="module")
def local_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSshd]:
    """One sshd shared by a test module; tests must not restart it (use fresh_local_sshd)."""
    server = LocalSshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_local_sshd(tmp_path: Path) -> Iterator[LocalSshd]:
    """An sshd of the test's own, which it may restart (with a new host key)."""
    server = LocalSshd(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ssh_endpoint(local_sshd: LocalSshd) -> SshEndpoint:
    return ssh_endpoint_for(local_sshd)


@pytest.fixture
def ssh_session(local_sshd: LocalSshd, ssh_endpoint: SshEndpoint) -> Iterator[SshSession]:
    """A session to `local_sshd`, its host key pinned to what ssh-keygen reports."""
    with open_session(ssh_endpoint, local_sshd.host_key_fingerprint, connect_timeout=5) as session:
        yield session


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size


@pytest.fixture
def ssh_isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Fail the test if SSH code reads a known_hosts file, contacts an SSH agent, creates
    ~/.ssh or changes the real user's known_hosts. HOME points to an empty directory."""
    real_known_hosts = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / "known_hosts"
    before = _stat(real_known_hosts)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    calls: list[str] = []

    def forbidden(name: str) -> Callable[..., None]:
        def record(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} must not be called")

        return record

    monkeypatch.setattr(paramiko.hostkeys.HostKeys, "load", forbidden("HostKeys.load"))
    monkeypatch.setattr(paramiko.hostkeys.HostKeys, "save", forbidden("HostKeys.save"))
    monkeypatch.setattr(
        paramiko.SSHClient, "load_system_host_keys", forbidden("load_system_host_keys")
    )
    monkeypatch.setattr(paramiko.agent.Agent, "__init__", forbidden("Agent"))
    yield home
    assert calls == []
    assert not (home / ".ssh").exists()
    assert _stat(real_known_hosts) == before


def pytest_collection_finish(session: pytest.Session) -> None:
    """Importing `iaas.wsgi` takes hypervisor access and the SSH key out of the process's
    environment (review M11), so every worker or helper process the tests start afterwards
    would inherit an API's rights and fail far from the cause: refuse that at once."""
    if os.environ.get("ANDROMEDE_HYPERVISOR_ACCESS") == "0":
        raise pytest.UsageError(
            "ANDROMEDE_HYPERVISOR_ACCESS=0 in the test process: a test module imported "
            "iaas.wsgi (use django.core.wsgi.get_wsgi_application instead)"
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under `make test` (ANDROMEDE_FORBID_SKIPS=1) a skipped test fails the run: no lane,
    least of all the hypervisor lane, may be skipped in CI."""
    import os

    if os.environ.get("ANDROMEDE_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        names = ", ".join(getattr(report, "nodeid", "?") for report in skipped[:10])
        print(f"\nERROR: {len(skipped)} test(s) skipped, which make test forbids: {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
