"""The key that signs audit checkpoints (review M2): Ed25519, kept in a file, never in the
database, so whoever can write the database cannot forge a checkpoint.

`AUDIT_SIGNING_KEY` (env `ANDROMEDE_AUDIT_SIGNING_KEY`) is the private key (PKCS#8 PEM, mode
0600); `AUDIT_VERIFY_KEY` (env `ANDROMEDE_AUDIT_VERIFY_KEY`, default: the private key's path +
`.pub`) is the public key `audit_verify` checks with, which an auditor can hold without the
private one. In the embedded default (no path configured) the key pair is made on first use
under var/; a configured key that is missing is an error, never silently replaced.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from iaas.secret_files import SecretFileError, read_secret_file, write_new_secret_file


class SigningKeyError(Exception):
    """The signing or verifying key is missing, unreadable, too open or not Ed25519."""


def _signing_key_path() -> Path:
    return Path(settings.AUDIT_SIGNING_KEY)


def _verify_key_path() -> Path:
    configured = getattr(settings, "AUDIT_VERIFY_KEY", None)
    return Path(configured) if configured else Path(f"{_signing_key_path()}.pub")


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _create(path: Path) -> Ed25519PrivateKey | None:
    """Make a new key pair at `path` (0600, O_EXCL) and its public half at `path`.pub; None
    if another process made it first (then use theirs)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if not write_new_secret_file(path, pem):
        return None
    public = Path(f"{path}.pub")
    public.write_bytes(_public_pem(key.public_key()))
    return key


def signing_key() -> Ed25519PrivateKey:
    """The private key; created on first use only in the embedded default."""
    path = _signing_key_path()
    if not path.exists() and settings.AUDIT_SIGNING_KEY_CREATE:
        created = _create(path)
        if created is not None:
            return created
    try:
        data = read_secret_file(path, "audit signing key")
    except SecretFileError as exc:
        raise SigningKeyError(str(exc)) from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise SigningKeyError(f"the audit signing key {path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the audit signing key {path} is not an Ed25519 key")
    return key


def verify_key() -> Ed25519PublicKey:
    """The public key checkpoints are verified with: the verify-key file, or else derived
    from the private key when this machine holds it."""
    path = _verify_key_path()
    if not path.exists():
        if _signing_key_path().exists():
            return signing_key().public_key()
        raise SigningKeyError(
            f"no public key to verify audit checkpoints with: {path} does not exist "
            "(set ANDROMEDE_AUDIT_VERIFY_KEY)"
        )
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"cannot read the audit verify key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"the audit verify key {path} is not an Ed25519 key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint naming the key in each checkpoint (SHA-256 of the raw key)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def encode_signature(signature: bytes) -> str:
    return base64.b64encode(signature).decode()


def signature_valid(key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True
