"""Fixtures for the compute tests: a real OpenSSH server on 127.0.0.1 (tests/support/sshd.py)
and sessions to it through compute.drivers.ssh."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from compute.drivers.ssh import SshEndpoint, SshSession, open_session
from tests.support.sshd import LocalSshd


def ssh_endpoint_for(server: LocalSshd, key: Path | None = None) -> SshEndpoint:
    """An endpoint for `server`, with its authorised client key unless `key` is given."""
    return SshEndpoint(
        host="127.0.0.1",
        port=server.port,
        username=server.username,
        private_key_path=str(key or server.client_key_path),
    )


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
