"""Volume types: the kinds of block storage operators offer."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, transaction

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from network.services.names import check_description, check_name
from tenants.models import Tenant
from volumes.models import VolumeType


def volume_type_create(
    *,
    actor: Actor,
    name: str,
    max_size_gb: int,
    backend: str = VolumeType.Backend.DIR,
    encrypted: bool = False,
    is_public: bool = True,
    description: str = "",
    tenant_slugs: Sequence[str] = (),
) -> VolumeType:
    """Declare a volume type; a private one (`is_public=False`) is offered only to the
    tenants named in `tenant_slugs`. 400 `unknown_tenant` for a slug that names no tenant,
    409 `already_exists` for a name in use. An `rbd` type may be declared ahead of its
    slice; volumes of it are refused (400 `not_supported_yet`) until then. An encrypted rbd
    type is refused (400 `not_supported_yet`): LUKS on RBD is not built."""
    check_name("volume type", name)
    check_description(description)
    if backend not in VolumeType.Backend.values:
        raise InvalidRequest(
            f"A volume type's backend is one of {', '.join(VolumeType.Backend.values)}.",
            code="invalid_backend",
        )
    if max_size_gb < 1:
        raise InvalidRequest("max_size_gb is at least 1.", code="invalid_size")
    if encrypted and backend == VolumeType.Backend.RBD:
        # QEMU's LUKS is built and proven on qcow2 files only (volumes.crypto); on RBD it
        # would be a raw LUKS image, neither built nor tested.
        raise InvalidRequest(
            "Encrypted volumes are not available on the rbd backend (Ceph) yet: declare an "
            "encrypted dir type, or a plain rbd one.",
            code="not_supported_yet",
            details={"backend": backend, "encrypted": True},
        )
    tenants = list(Tenant.objects.filter(slug__in=tenant_slugs))
    if len(tenants) != len(set(tenant_slugs)):
        raise InvalidRequest("Unknown tenant in tenants.", code="unknown_tenant")
    fields = {
        "name": name, "description": description, "backend": backend, "encrypted": encrypted,
        "max_size_gb": max_size_gb, "is_public": is_public,
    }  # fmt: skip
    try:
        with transaction.atomic():
            volume_type = VolumeType.objects.create(**fields)
            volume_type.access.set(tenants)
            audit_record(
                actor=actor,
                action="volume_type.create",
                target=volume_type,
                details={**fields, "tenants": sorted(set(tenant_slugs))},
            )
    except IntegrityError as exc:
        if VolumeType.objects.filter(name=name).exists():
            raise ConflictError(
                "A volume type with this name exists.", code="already_exists"
            ) from exc
        raise
    return volume_type


def volume_type_ensure(
    *, actor: Actor, name: str, max_size_gb: int, description: str = ""
) -> tuple[VolumeType, bool]:
    """The public directory-backed type `name`, declared if missing (True then); one that
    exists is returned as it is, whatever an operator changed in it. Two concurrent calls
    declare it once (the name is unique)."""
    existing = VolumeType.objects.filter(name=name).first()
    if existing is not None:
        return existing, False
    try:
        created = volume_type_create(
            actor=actor, name=name, max_size_gb=max_size_gb, description=description
        )
    except ConflictError:
        return VolumeType.objects.get(name=name), False
    return created, True
