"""Flavors: the sizes operators offer (public, or private to a list of tenants)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, transaction

from compute.models import Flavor
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from tenants.models import Tenant


def flavor_create(
    *,
    actor: Actor,
    name: str,
    vcpus: int,
    memory_mb: int,
    disk_gb: int,
    is_public: bool = True,
    tenant_slugs: Sequence[str] = (),
) -> Flavor:
    """Create a flavor; a private one (`is_public=False`) is usable only by the tenants
    named in `tenant_slugs`. 400 `unknown_tenant` for a slug that names no tenant, 409
    `already_exists` for a name in use (the unique constraint decides under concurrency)."""
    tenants = list(Tenant.objects.filter(slug__in=tenant_slugs))
    if len(tenants) != len(set(tenant_slugs)):
        raise InvalidRequest("Unknown tenant in tenants.", code="unknown_tenant")
    fields = {
        "name": name, "vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb,
        "is_public": is_public,
    }  # fmt: skip
    try:
        with transaction.atomic():
            flavor = Flavor.objects.create(**fields)
            flavor.access.set(tenants)
            audit_record(
                actor=actor,
                action="flavor.create",
                target=flavor,
                details={**fields, "tenants": sorted(set(tenant_slugs))},
            )
    except IntegrityError as exc:
        if Flavor.objects.filter(name=name).exists():
            raise ConflictError("A flavor with this name exists.", code="already_exists") from exc
        raise
    return flavor
