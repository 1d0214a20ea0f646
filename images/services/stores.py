"""Image stores: which one an image's file goes to, and where an image may be copied.

Residency (DESIGN §6, §8): a tenant's image file — uploaded or a snapshot — lives only in a
store whose zone's jurisdiction the tenant's residency policy allows, and is cached only on
hosts whose zone's jurisdiction the policy allows. A refusal is 409 `residency_unsatisfiable`,
the code placement answers when no host is allowed. Public images belong to the platform, not
to a tenant: they hold no tenant data and may be stored and cached anywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from hosts.models import Zone
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from images.models import Image, ImageStore
from tenants.models import Tenant

DEFAULT_STORE = "default"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class ResidencyUnsatisfiable(ConflictError):
    """The same code as placement's refusal (compute.services.scheduler)."""

    code = "residency_unsatisfiable"


def default_store() -> ImageStore | None:
    """The settings' store (settings.IMAGE_STORE_DIR in the zone settings.IMAGE_STORE_ZONE),
    its row made on first use; None when no such zone is declared."""
    zone = Zone.objects.filter(name=settings.IMAGE_STORE_ZONE).first()
    if not settings.IMAGE_STORE_ZONE or zone is None:
        return None
    store = ImageStore.objects.filter(name=DEFAULT_STORE).first()
    if store is None:
        try:
            with transaction.atomic():
                store = ImageStore.objects.create(name=DEFAULT_STORE, zone=zone, path="")
        except IntegrityError:  # made by a concurrent first use
            store = ImageStore.objects.get(name=DEFAULT_STORE)
    return store


def residency_of(tenant: Tenant | None) -> tuple[str, ...] | None:
    """The jurisdictions `tenant`'s data may live in; None (anywhere) for the platform."""
    return None if tenant is None else tuple(tenant.residency)


def store_allowed(store: ImageStore, tenant: Tenant | None) -> bool:
    allowed = residency_of(tenant)
    return store.enabled and (allowed is None or store.zone.jurisdiction in allowed)


def store_choose(tenant: Tenant | None, *, near: Zone | None = None) -> ImageStore:
    """An enabled store whose zone the tenant's residency allows: one in zone `near` if
    there is one (a snapshot stays in its instance's datacenter), then the default store,
    then the first by name. ResidencyUnsatisfiable when there is none."""
    default = default_store()
    stores = ImageStore.objects.select_related("zone").filter(enabled=True)
    allowed = residency_of(tenant)
    if allowed is not None:
        stores = stores.filter(zone__jurisdiction__in=allowed)
    candidates = list(stores.order_by("name"))
    if not candidates:
        if allowed is None:
            raise ConflictError(
                "No image store is enabled: declare one (/api/v1/admin/image-stores), or the "
                f"zone {settings.IMAGE_STORE_ZONE or '(none)'} that ANDROMEDE_IMAGE_STORE_ZONE "
                "names for the default store.",
                code="no_image_store",
            )
        raise ResidencyUnsatisfiable(
            f"No image store lies in a zone your residency policy ({', '.join(allowed)}) "
            "allows. Ask an operator, or change the policy.",
            details={"residency": list(allowed)},
        )
    in_zone = [store for store in candidates if near is not None and store.zone_id == near.pk]
    if in_zone:
        return in_zone[0]
    if default is not None and default in candidates:
        return default
    return candidates[0]


def store_for_file(image: Image) -> ImageStore:
    """The store an image's file is about to be written to, checked against its owner's
    residency *now* (it may have changed since the image was created): its own store if still
    allowed, else another allowed one (recorded on the image; nothing was written yet), else
    ResidencyUnsatisfiable."""
    store = image.store
    if store is not None and store_allowed(store, image.tenant):
        return store
    store = store_choose(image.tenant, near=store.zone if store is not None else None)
    Image.objects.filter(pk=image.pk).update(store=store)
    image.store = store
    return store


def host_zone_check(image: Image, zone: Zone) -> None:
    """Refuse (ResidencyUnsatisfiable) to copy a tenant's image onto a host of `zone` when
    the tenant's residency does not allow that zone's jurisdiction (placement checks the
    instance; this covers a policy narrowed since, and rebuilds on the same host). Public
    images go anywhere."""
    allowed = residency_of(image.tenant)
    if allowed is not None and zone.jurisdiction not in allowed:
        raise ResidencyUnsatisfiable(
            f"Your residency policy ({', '.join(allowed)}) does not allow the image's data in "
            f"zone {zone.name} ({zone.jurisdiction}).",
            details={"residency": list(allowed), "zone": zone.name},
        )


@transaction.atomic
def image_store_create(*, actor: Actor, name: str, zone: Zone, path: str) -> ImageStore:
    """Declare the image store of a zone: `path`, an existing directory of the control plane
    the API may write (a mount of that zone's storage). 409 `already_exists` for a name in
    use; 400 for a path that is not such a directory."""
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            "A store name is 1 to 64 lowercase letters, digits and '-'.", details={"name": name}
        )
    directory = Path(path)
    if not directory.is_absolute() or ".." in directory.parts:
        raise InvalidRequest("A store's path is an absolute directory.", details={"path": path})
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidRequest(
            "A store's directory must exist and be writable by the API: mount the zone's "
            "storage there first.",
            code="store_directory_unusable",
            details={"path": path},
        )
    try:
        with transaction.atomic():
            store = ImageStore.objects.create(name=name, zone=zone, path=path)
    except IntegrityError as exc:
        raise ConflictError(
            f"An image store named {name!r} exists.", code="already_exists"
        ) from exc
    audit_record(
        actor=actor,
        action="image_store.create",
        target=store,
        details={"zone": zone.name, "jurisdiction": zone.jurisdiction, "path": path},
    )
    return store
