"""Importing and deleting SSH keypairs."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from compute.models import KeyPair
from compute.sshkeys import InvalidPublicKey, parse_public_key
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from tenants.models import Tenant
from tenants.quotas import quota_enforce

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            "A keypair name is 1 to 64 characters: letters, digits, '.', '_', '@' and '-', "
            "starting with a letter or digit.",
            details={"name": name[:80]},
        )


@transaction.atomic
def keypair_import(*, actor: Actor, tenant: Tenant, name: str, public_key: str) -> KeyPair:
    """Import a public key under a name unique in the tenant, within the `keypairs` quota."""
    _check_name(name)
    try:
        parsed = parse_public_key(public_key)
    except InvalidPublicKey as exc:
        raise InvalidRequest(str(exc), code="invalid_public_key") from exc
    quota_enforce(tenant, "keypairs")
    if KeyPair.objects.filter(tenant=tenant, name=name).exists():
        raise ConflictError(f"A keypair named {name!r} exists.", code="already_exists")
    try:
        with transaction.atomic():
            keypair = KeyPair.objects.create(
                tenant=tenant,
                name=name,
                key_type=parsed.key_type,
                public_key=parsed.openssh,
                fingerprint=parsed.fingerprint,
                bits=parsed.bits,
                created_by_id=actor.user_id,
            )
    except IntegrityError as exc:  # lost a race on the name
        raise ConflictError(f"A keypair named {name!r} exists.", code="already_exists") from exc
    audit_record(
        actor=actor,
        action="keypair.create",
        tenant_id=tenant.id,
        target=keypair,
        details={"fingerprint": parsed.fingerprint, "key_type": parsed.key_type},
    )
    return keypair


@transaction.atomic
def keypair_delete(*, actor: Actor, keypair: KeyPair) -> None:
    """Delete a keypair. Instances already booted with it keep the key they were given."""
    audit_record(
        actor=actor,
        action="keypair.delete",
        tenant_id=keypair.tenant_id,
        target=keypair,
        details={"fingerprint": keypair.fingerprint},
    )
    KeyPair.objects.filter(pk=keypair.pk).delete()


def keypair_generate(*, actor: Actor, tenant: Tenant, name: str) -> tuple[KeyPair, str]:
    """Make a new ed25519 key, import its public half as `keypair_import` does (same name
    rules, quota and audit), and return the private half in OpenSSH format. The private key
    is never stored nor logged: the caller shows it once to the user who asked."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    keypair = keypair_import(
        actor=actor, tenant=tenant, name=name, public_key=f"{public.decode()} {name}"
    )
    private_text = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return keypair, private_text
