"""Keys of encrypted volumes (DESIGN §8, issue 11 item 7): three levels, so that destroying
one small key makes a tenant's data unreadable (crypto-shredding).

- The **master key** (32 bytes) comes from the configuration (`VOLUME_MASTER_KEY`, base64,
  or the file `VOLUME_MASTER_KEY_FILE`, 0600; made on first use in the embedded default, as
  the audit signing key is). It is never in the database.
- Each tenant has a **tenant key** (`TenantKey`, 32 random bytes), stored only wrapped by
  the master key.
- Each encrypted volume has a **data key**: the passphrase of its QEMU LUKS header (QEMU's
  LUKS keeps its own volume master key inside the header, unlocked by this passphrase),
  stored only wrapped by its tenant key (`Volume.wrapped_key`).

Wrapping is AES-256-GCM with a random 96-bit nonce and the wrapped key's identity as
associated data (the tenant and version, the volume id), so a wrapped key copied onto
another row does not unwrap. A wrong master key fails loudly (`VolumeKeyError`), never
yields garbage. Key material is never logged nor put in an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction

from iaas.secret_files import SecretFileError, read_secret_file, write_new_secret_file
from tenants.models import Tenant
from volumes.models import TenantKey, Volume

KEY_BYTES = 32
_NONCE_BYTES = 12
_FORMAT = b"\x01"  # the wrapping's version: AES-256-GCM, nonce first


class VolumeKeyError(Exception):
    """A key is missing, misconfigured, destroyed, or does not unwrap (wrong master key)."""


class VolumeKeyShredded(VolumeKeyError):
    """The volume's tenant key was destroyed by a shred: its data can never be read."""


# --- the master key ---------------------------------------------------------------------------


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise VolumeKeyError(f"the volume master key in {where} is not base64") from None
    if len(key) != KEY_BYTES:
        raise VolumeKeyError(
            f"the volume master key in {where} has {len(key)} bytes; it must have {KEY_BYTES}"
        )
    return key


def _create(path: Path) -> None:
    """A new random key at `path` (0600, O_EXCL); another process made it first: theirs."""
    write_new_secret_file(path, base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")


def master_key() -> bytes:
    """The configured master key: the setting's value, else the key file's (made on first
    use only in the embedded default). VolumeKeyError when missing, too open or malformed."""
    configured = getattr(settings, "VOLUME_MASTER_KEY", None)
    if configured:
        return _decode(configured, "ANDROMEDE_VOLUME_MASTER_KEY")
    path = Path(settings.VOLUME_MASTER_KEY_FILE)
    if not path.exists() and settings.VOLUME_MASTER_KEY_CREATE:
        _create(path)
    try:
        # Not ASCII: not base64 either, which _decode says (never quoting the bytes).
        text = read_secret_file(path, "volume master key").decode("ascii", errors="replace")
    except SecretFileError as exc:
        raise VolumeKeyError(str(exc)) from None
    return _decode(text, str(path))


def key_id(key: bytes) -> str:
    """A fingerprint naming a master key (HMAC of a fixed label: it reveals nothing of the
    key), recorded with each tenant key so a wrong master key is named as such."""
    return hmac.new(key, b"andromede volume master key id", hashlib.sha256).hexdigest()[:16]


# --- wrapping ---------------------------------------------------------------------------------


def wrap(key: bytes, plaintext: bytes, context: str) -> bytes:
    """`plaintext` encrypted and authenticated under `key`, bound to `context`."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return _FORMAT + nonce + AESGCM(key).encrypt(nonce, plaintext, context.encode())


def unwrap(key: bytes, wrapped: bytes, context: str) -> bytes:
    """The plaintext `wrap` was given; VolumeKeyError if `key` or `context` is not the one
    it was wrapped with, or the bytes were altered."""
    wrapped = bytes(wrapped)
    if not wrapped.startswith(_FORMAT) or len(wrapped) < 1 + _NONCE_BYTES + 16:
        raise VolumeKeyError(f"{context}: not a wrapped key")
    nonce, sealed = wrapped[1 : 1 + _NONCE_BYTES], wrapped[1 + _NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, sealed, context.encode())
    except InvalidTag:
        raise VolumeKeyError(f"{context}: the key does not unwrap") from None


def _tenant_context(tenant_key: TenantKey) -> str:
    return f"andromede tenant-key {tenant_key.tenant_id} v{tenant_key.version}"


def _volume_context(volume: Volume) -> str:
    return f"andromede volume-key {volume.pk}"


# --- tenant keys and data keys ----------------------------------------------------------------


def live_tenant_key(tenant: Tenant) -> TenantKey:
    """The tenant's live key, made (next version) if it has none; inside the caller's
    transaction. Two concurrent first uses: the unique constraint keeps one, the loser
    reads it."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("tenant keys are made inside the caller's transaction")
    existing = TenantKey.objects.filter(tenant=tenant, destroyed_at__isnull=True).first()
    if existing is not None:
        return existing
    master = master_key()
    last = TenantKey.objects.filter(tenant=tenant).order_by("-version").first()
    made = TenantKey(
        tenant=tenant, version=(last.version + 1) if last else 1, master_key_id=key_id(master)
    )
    made.wrapped_key = wrap(master, secrets.token_bytes(KEY_BYTES), _tenant_context(made))
    try:
        with transaction.atomic():
            made.save(force_insert=True)
    except IntegrityError:
        return TenantKey.objects.get(tenant=tenant, destroyed_at__isnull=True)
    return made


def _tenant_key_bytes(tenant_key: TenantKey) -> bytes:
    if tenant_key.destroyed_at is not None:
        raise VolumeKeyShredded(
            f"the key of tenant {tenant_key.tenant_id} was destroyed (shredded)"
        )
    master = master_key()
    if tenant_key.master_key_id != key_id(master):
        raise VolumeKeyError(
            f"tenant key v{tenant_key.version} of {tenant_key.tenant_id} is wrapped by master "
            f"key {tenant_key.master_key_id}, not by the configured one ({key_id(master)})"
        )
    return unwrap(master, bytes(tenant_key.wrapped_key), _tenant_context(tenant_key))


def new_master_key_file(path: Path) -> bytes:
    """The key in `path`, made there (random, 0600, O_EXCL) if absent: the next master key of
    a rotation (kept across a rotation that was interrupted, so a second run finishes it)."""
    if not path.exists():
        _create(path)
    try:
        text = read_secret_file(path, "new volume master key").decode("ascii", errors="replace")
    except SecretFileError as exc:
        raise VolumeKeyError(str(exc)) from None
    return _decode(text, str(path))


def tenant_key_rewrap(tenant_key: TenantKey, old: bytes, new: bytes) -> bool:
    """Wrap the live `tenant_key` by the master key `new` instead of `old` (the row is
    changed, not saved). False when it is wrapped by `new` already; VolumeKeyError when by
    neither, or when it does not unwrap. The tenant key itself does not change, so no
    volume's wrapped data key does either."""
    if tenant_key.master_key_id == key_id(new):
        return False
    if tenant_key.master_key_id != key_id(old):
        raise VolumeKeyError(
            f"tenant key v{tenant_key.version} of {tenant_key.tenant_id} is wrapped by master "
            f"key {tenant_key.master_key_id}: neither the configured one ({key_id(old)}) nor "
            f"the new one ({key_id(new)})"
        )
    context = _tenant_context(tenant_key)
    plain = unwrap(old, bytes(tenant_key.wrapped_key), context)
    tenant_key.wrapped_key = wrap(new, plain, context)
    tenant_key.master_key_id = key_id(new)
    return True


def volume_key_assign(volume: Volume) -> None:
    """Give the new encrypted `volume` a random data key, wrapped by its tenant's live key
    (made if needed); saved with the volume, in the caller's transaction."""
    tenant_key = live_tenant_key(volume.tenant)
    passphrase = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES))
    volume.tenant_key = tenant_key
    volume.wrapped_key = wrap(_tenant_key_bytes(tenant_key), passphrase, _volume_context(volume))
    volume.save(update_fields=["tenant_key", "wrapped_key"])


def volume_passphrase(volume: Volume) -> bytes:
    """The LUKS passphrase of an encrypted volume, for the worker to define as its libvirt
    secret. VolumeKeyShredded after a shred, VolumeKeyError if it cannot be unwrapped."""
    if volume.key_shredded_at is not None or volume.tenant_key_id is None:
        raise VolumeKeyShredded(f"the key of volume {volume.pk} was destroyed (shredded)")
    tenant_key = TenantKey.objects.get(pk=volume.tenant_key_id)
    if volume.wrapped_key is None:
        raise VolumeKeyShredded(f"the key of volume {volume.pk} was destroyed (shredded)")
    return unwrap(_tenant_key_bytes(tenant_key), bytes(volume.wrapped_key),
                  _volume_context(volume))  # fmt: skip


def secret_uuid(volume_id: object) -> str:
    """The libvirt secret of an encrypted volume is named by the volume's id."""
    return str(volume_id)


def is_encrypted(volume: Volume) -> bool:
    """Made encrypted (its tenant key stays named after a shred)."""
    return volume.tenant_key_id is not None
