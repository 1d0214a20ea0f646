"""Logging into test guests over SSH with the tenant's key, the guest's host key pinned from
what the guest printed on its serial console (never trusted on first use).

Two kinds of guests print their host keys:

- the project's test image (scripts/test-image/init), one line per boot before its READY line::

      ANDROMEDE-SSH port=22 fingerprint=SHA256:<b64> key=ssh-ed25519:<b64>

- a real cloud image: cloud-init writes the keys it made between
  ``-----BEGIN SSH HOST KEY KEYS-----`` and ``-----END SSH HOST KEY KEYS-----``.

The console is the out-of-band channel a cloud user has too (OpenStack's "console log"), and
the host key is read there through the API, so a client that reaches another machine on the
guest's address (a stale ARP entry, a spoofing guest) is refused, not trusted.

    key = host_key_from_console(console)          # or cloud_init_host_keys(console)
    with connect(ip, key, "root", private_key) as ssh:
        status, out, err = run(ssh, "id")
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko

from hypervisor.ssh import fingerprint

SSH_LINE_RE = re.compile(
    r"^ANDROMEDE-SSH port=(?P<port>\d+) fingerprint=(?P<fp>SHA256:[A-Za-z0-9+/]+)"
    r" key=(?P<type>ssh-ed25519):(?P<b64>[A-Za-z0-9+/]+=*)[ \t\r]*$",
    re.M,
)
_CLOUD_INIT_KEYS_RE = re.compile(
    r"-----BEGIN SSH HOST KEY KEYS-----(?P<body>.*?)-----END SSH HOST KEY KEYS-----", re.S
)
_KEY_LINE_RE = re.compile(
    r"(?P<type>ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) (?P<b64>[A-Za-z0-9+/]+=*)"
)
_KEY_CLASSES: dict[str, type[paramiko.PKey]] = {
    "ssh-ed25519": paramiko.Ed25519Key,
    "ssh-rsa": paramiko.RSAKey,
    "ecdsa-sha2-nistp256": paramiko.ECDSAKey,
    "ecdsa-sha2-nistp384": paramiko.ECDSAKey,
    "ecdsa-sha2-nistp521": paramiko.ECDSAKey,
}


@dataclass(frozen=True)
class GuestHostKey:
    """A host key a guest printed: its type (``ssh-ed25519``…), the public blob in base64 and
    the SSH port the guest said it listens on."""

    key_type: str
    key_base64: str
    port: int = 22

    def pkey(self) -> paramiko.PKey:
        """The paramiko public key (raises ValueError when the blob is not a key of the type)."""
        try:
            blob = base64.b64decode(self.key_base64, validate=True)
            return _KEY_CLASSES[self.key_type](data=blob)
        except (KeyError, binascii.Error, paramiko.SSHException) as exc:
            raise ValueError(f"not a {self.key_type} public key: {exc}") from exc

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.pkey())


def host_key_from_console(console: str) -> GuestHostKey:
    """The host key of the test image's latest boot (its last ANDROMEDE-SSH line). Raises
    ValueError when there is none or when the printed fingerprint does not match the key (a
    garbled console line must not become a pinned key)."""
    matches = list(SSH_LINE_RE.finditer(console))
    if not matches:
        raise ValueError("the console shows no ANDROMEDE-SSH line")
    last = matches[-1]
    key = GuestHostKey(last["type"], last["b64"], int(last["port"]))
    if key.fingerprint != last["fp"]:
        raise ValueError(f"printed fingerprint {last['fp']} is not the key's {key.fingerprint}")
    return key


def cloud_init_host_keys(console: str) -> list[GuestHostKey]:
    """The host keys cloud-init printed in its last ``SSH HOST KEY KEYS`` block (raises
    ValueError when there is no block yet)."""
    blocks = list(_CLOUD_INIT_KEYS_RE.finditer(console))
    if not blocks:
        raise ValueError("the console shows no cloud-init SSH HOST KEY KEYS block")
    return [GuestHostKey(m["type"], m["b64"]) for m in _KEY_LINE_RE.finditer(blocks[-1]["body"])]


@contextmanager
def connect(
    address: str,
    host_keys: GuestHostKey | Iterable[GuestHostKey],
    username: str,
    private_key: Path,
    timeout: float = 60.0,
    port: int | None = None,
) -> Iterator[paramiko.SSHClient]:
    """An SSH session to `address` as `username` with `private_key` (a file ssh-keygen made),
    accepting only the given host keys (paramiko's RejectPolicy refuses any other). Retries
    refused and timed-out connections until `timeout` (a guest may still be starting its
    server); an authentication failure or a wrong host key is raised at once."""
    keys = [host_keys] if isinstance(host_keys, GuestHostKey) else list(host_keys)
    if not keys:
        raise ValueError("no host key to pin")
    port = keys[0].port if port is None else port
    known_as = address if port == 22 else f"[{address}]:{port}"
    client = paramiko.SSHClient()
    for key in keys:
        pkey = key.pkey()
        client.get_host_keys().add(known_as, pkey.get_name(), pkey)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.connect(
                    address, port=port, username=username, key_filename=str(private_key),
                    look_for_keys=False, allow_agent=False, timeout=10, banner_timeout=20,
                    auth_timeout=20,
                )  # fmt: skip
                break
            except (paramiko.BadHostKeyException, paramiko.AuthenticationException):
                raise  # another machine, or a key the guest refuses: never retried
            except (OSError, EOFError, paramiko.SSHException):
                # refused, timed out, or a server that closed before its banner: starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield client
    finally:
        client.close()


def run(client: paramiko.SSHClient, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run `command` in a session; (exit status, stdout, stderr). Bounded by `timeout`."""
    _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode(errors="replace")
    err = stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out, err
