"""compute.sshkeys: which OpenSSH public keys are accepted, what is measured about them, and
why the others are refused. Fingerprints are checked against ssh-keygen itself."""

from __future__ import annotations

import base64
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from compute.sshkeys import MAX_KEY_TEXT, InvalidPublicKey, parse_public_key


def ssh_keygen_fingerprint(public_key: str, tmp_path: Path) -> tuple[int, str]:
    """(bits, SHA256 fingerprint) as `ssh-keygen -lf` prints them."""
    path = tmp_path / "key.pub"
    path.write_text(public_key + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    bits, fingerprint = out.split()[:2]
    return int(bits), fingerprint


def blob(key_type: str, payload: bytes = b"\x00" * 40) -> str:
    """Base64 of an SSH wire-format blob that declares `key_type`."""
    raw = struct.pack(">I", len(key_type)) + key_type.encode() + payload
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("name", "key_type", "bits"),
    [
        ("ed25519", "ssh-ed25519", 256),
        ("ecdsa", "ecdsa-sha2-nistp256", 256),
        ("rsa2048", "ssh-rsa", 2048),
    ],
)
def test_accepted_keys_match_ssh_keygen(ssh_public_keys, tmp_path, name, key_type, bits):
    text = ssh_public_keys[name]
    parsed = parse_public_key(text)
    assert parsed.key_type == key_type
    assert parsed.bits == bits
    assert (parsed.bits, parsed.fingerprint) == ssh_keygen_fingerprint(text, tmp_path)
    assert parsed.fingerprint.startswith("SHA256:")
    assert parsed.openssh == text  # already normal: type, data, comment


def test_ecdsa_p384_is_accepted_with_384_bits(tmp_path):
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    parsed = parse_public_key(text.decode())
    assert parsed.key_type == "ecdsa-sha2-nistp384"
    assert parsed.bits == 384
    assert parsed.fingerprint == ssh_keygen_fingerprint(text.decode(), tmp_path)[1]


def test_key_without_comment_and_surrounding_whitespace():
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    bare = key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    parsed = parse_public_key(f"  {bare}\n")
    assert parsed.openssh == bare
    assert parsed.bits == 256


def test_comment_with_spaces_is_kept(ssh_public_keys):
    key_type, data, _ = ssh_public_keys["ed25519"].split(" ", 2)
    parsed = parse_public_key(f"{key_type} {data} alice at her laptop")
    assert parsed.openssh == f"{key_type} {data} alice at her laptop"


def test_the_same_key_with_another_comment_has_the_same_fingerprint(ssh_public_keys):
    key_type, data, _ = ssh_public_keys["ecdsa"].split(" ", 2)
    assert (
        parse_public_key(f"{key_type} {data} one").fingerprint
        == parse_public_key(f"{key_type} {data} two").fingerprint
    )


def _private_pem() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


REFUSED = {
    # name: (text or a callable of the fixture keys, words the reason must contain)
    "dsa": (lambda k: f"ssh-dss {blob('ssh-dss', b'x' * 400)} old@host", "not accepted"),
    "rsa1024": (lambda k: k["rsa1024"], "at least 2048"),
    "garbage_base64": (lambda k: "ssh-ed25519 !!!not*base64!!! me@host", "base64"),
    "type_mismatch": (lambda k: "ssh-rsa " + k["ed25519"].split()[1], "does not match"),
    "private_pem": (lambda k: _private_pem(), "private"),
    "two_lines": (lambda k: k["ed25519"] + "\n" + k["ecdsa"], "one line"),
    "carriage_return": (lambda k: k["ed25519"] + "\r" + k["ecdsa"], "one line"),
    "empty": (lambda k: "", "expected"),
    "type_only": (lambda k: "ssh-ed25519", "expected"),
    "certificate": (
        lambda k: f"ssh-ed25519-cert-v01@openssh.com {blob('ssh-ed25519-cert-v01@openssh.com')}",
        "not accepted",
    ),
    "security_key": (
        lambda k: f"sk-ssh-ed25519@openssh.com {blob('sk-ssh-ed25519@openssh.com')}",
        "not accepted",
    ),
    "truncated_blob": (lambda k: "ssh-ed25519 AAAA", "truncated"),
    "bad_key_body": (lambda k: f"ssh-ed25519 {blob('ssh-ed25519', b'short')}", "not a valid"),
    "control_char_comment": (lambda k: k["ed25519"] + "\x07bell", "control"),
    "too_long": (lambda k: k["ed25519"] + " " + "c" * MAX_KEY_TEXT, "at most"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_keys_say_why(ssh_public_keys, case):
    make, reason = REFUSED[case]
    with pytest.raises(InvalidPublicKey) as refused:
        parse_public_key(make(ssh_public_keys))
    assert reason in str(refused.value).lower()
