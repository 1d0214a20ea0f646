"""Parsing and checking OpenSSH public keys (`ssh-ed25519 AAAA… comment`).

Accepted: ed25519, ECDSA (P-256, P-384, P-521) and RSA of at least 2048 bits. DSA, RSA below
2048 bits, certificates, security-key types and anything malformed are refused with a reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

MAX_KEY_TEXT = 16 * 1024
MIN_RSA_BITS = 2048
ACCEPTED_TYPES = {
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
}


class InvalidPublicKey(ValueError):
    """The text is not an acceptable OpenSSH public key; the message says why."""


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    bits: int
    fingerprint: str
    openssh: str  # normalised: "type base64 [comment]"


def _blob_type(blob: bytes) -> str:
    if len(blob) < 4:
        raise InvalidPublicKey("The key data is truncated.")
    (length,) = struct.unpack(">I", blob[:4])
    if length > 64 or len(blob) < 4 + length:
        raise InvalidPublicKey("The key data is truncated.")
    return blob[4 : 4 + length].decode("ascii", errors="replace")


def parse_public_key(text: str) -> PublicKey:
    if len(text) > MAX_KEY_TEXT:
        raise InvalidPublicKey(f"A public key is at most {MAX_KEY_TEXT} characters.")
    text = text.strip()
    if text.startswith("-----BEGIN"):  # before the one-line check: PEM keys span lines
        raise InvalidPublicKey("This looks like a private or PEM key; give the OpenSSH public key.")
    if "\n" in text or "\r" in text:
        raise InvalidPublicKey("Give exactly one public key, on one line.")
    fields = text.split(None, 2)
    if len(fields) < 2:
        raise InvalidPublicKey("Expected 'type base64-data [comment]'.")
    key_type, data = fields[0], fields[1]
    comment = fields[2] if len(fields) == 3 else ""
    if key_type not in ACCEPTED_TYPES:
        raise InvalidPublicKey(
            f"Key type {key_type[:40]!r} is not accepted; use ssh-ed25519, "
            "ecdsa-sha2-nistp256/384/521 or ssh-rsa (2048 bits or more)."
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in comment):
        raise InvalidPublicKey("The comment contains control characters.")
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPublicKey("The key data is not valid base64.") from exc
    if _blob_type(blob) != key_type:
        raise InvalidPublicKey("The key data does not match the declared key type.")
    try:
        key = load_ssh_public_key(f"{key_type} {data}".encode())
    except (ValueError, TypeError) as exc:
        raise InvalidPublicKey("The key data is not a valid public key.") from exc
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS:
            raise InvalidPublicKey(
                f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {bits}."
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        bits = 256
    else:  # pragma: no cover - excluded by ACCEPTED_TYPES
        raise InvalidPublicKey("Unsupported key algorithm.")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    normalised = f"{key_type} {data}" + (f" {comment}" if comment else "")
    return PublicKey(
        key_type=key_type, bits=bits, fingerprint=f"SHA256:{digest}", openssh=normalised
    )
