"""API token secrets: generation, parsing and hashing.

A token reads `andr_<key id>_<secret>`: the key id (12 hex characters) finds the row, the
secret (256 random bits) proves possession. Only SHA-256(key id, secret) is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "andr"


@dataclass(frozen=True)
class TokenParts:
    key_id: str
    secret: str


def generate() -> tuple[TokenParts, str]:
    """A new (parts, full token string). The full string is shown once and never stored."""
    parts = TokenParts(key_id=secrets.token_hex(6), secret=secrets.token_urlsafe(32))
    return parts, f"{PREFIX}_{parts.key_id}_{parts.secret}"


def parse(raw: str) -> TokenParts | None:
    """The parts of a well-formed token string, or None."""
    pieces = raw.split("_", 2)
    if len(pieces) != 3 or pieces[0] != PREFIX:
        return None
    key_id, secret = pieces[1], pieces[2]
    if len(key_id) != 12 or not all(c in "0123456789abcdef" for c in key_id):
        return None
    if not 20 <= len(secret) <= 128:
        return None
    return TokenParts(key_id=key_id, secret=secret)


def secret_hash(parts: TokenParts) -> str:
    return hashlib.sha256(f"{parts.key_id}:{parts.secret}".encode()).hexdigest()


def matches(parts: TokenParts, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(parts), stored_hash)
