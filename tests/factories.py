"""Factories: plain functions that build what a test starts from through the project's own
services, so every object is validated, counted against quotas and audited like a real one.

The ORM appears only where no service can produce the state a test needs, each time with a
comment saying why. Fixtures that assemble these (`cloud`, `make_tenant`, …) live in the
conftest.py files; helpers that drive the API live in tests/support/.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compute.models import Flavor, Instance, KeyPair, ServerGroup
from compute.services import flavors as flavor_services
from compute.services import instances as instance_services
from compute.services import keypairs as keypair_services
from compute.services import resize as resize_services
from compute.services import server_groups as server_group_services
from hosts.models import Host, Zone
from hosts.services import onboarding, zones
from iaas.audit import Actor
from images.models import Image
from images.services import images as image_services
from operations.models import Operation
from operations.worker import run_operation
from tenants import services as tenant_services
from tenants.models import Tenant
from volumes.models import Volume, VolumeType
from volumes.services import volume_types as volume_type_services
from volumes.services import volumes as volume_services

SYSTEM = Actor.system("tests")
FAKE_URI = "test:///default"


# ---- tenants ----------------------------------------------------------------------------------


def tenant(slug: str, **fields: Any) -> Tenant:
    return tenant_services.tenant_create(actor=SYSTEM, name=slug.title(), slug=slug, **fields)


# ---- zones and hosts --------------------------------------------------------------------------


def zone(name: str = "fr-par-1", jurisdiction: str = "FR", *, region: str = "r1") -> Zone:
    return zones.zone_create(
        actor=SYSTEM, region=region, name=name, site="dc", city="c", country=jurisdiction,
        jurisdiction=jurisdiction,
    )  # fmt: skip


def host(name: str, zone: Zone, **capacity: Any) -> Host:
    """A host onboarded on libvirt's fake hypervisor (test:///default), with its pools."""
    onboarded = onboarding.host_onboard(
        actor=SYSTEM,
        registration=onboarding.HostRegistration(
            name=name, zone=zone, libvirt_uri=FAKE_URI, storage_root=f"/fake/{name}"
        ),
    )
    # The ORM: onboarding records what the hypervisor reports, and libvirt's fake reports an
    # i686 host of a fixed size; our images are x86_64 and placement tests need exact room.
    Host.objects.filter(pk=onboarded.pk).update(arch="x86_64", **capacity)
    onboarded.refresh_from_db()
    return onboarded


# ---- flavors ----------------------------------------------------------------------------------


def flavor(
    name: str = "small",
    vcpus: int = 1,
    memory_mb: int = 256,
    disk_gb: int = 1,
    *,
    is_public: bool = True,
    tenants: Sequence[str] = (),
) -> Flavor:
    return flavor_services.flavor_create(
        actor=SYSTEM, name=name, vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb,
        is_public=is_public, tenant_slugs=tenants,
    )  # fmt: skip


# ---- images -----------------------------------------------------------------------------------


def qcow2(path: Path, virtual_size: str = "1M") -> Path:
    """An empty qcow2 file made by qemu-img (a few hundred KiB)."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(path), virtual_size],
        check=True,
        capture_output=True,
    )
    return path


def upload(image: Image, file: Path) -> Image:
    """Upload `file` into `image` through the upload service (settings.IMAGE_STORE_DIR)."""
    with file.open("rb") as stream:
        return image_services.image_upload(
            actor=SYSTEM, image=image, stream=stream, length=file.stat().st_size
        )


def image(
    tenant: Tenant | None = None,
    name: str = "andromede-test",
    *,
    file: Path | None = None,
    disk_format: str = "qcow2",
    **fields: Any,
) -> Image:
    """A tenant's private image (or, without a tenant, a public one): `queued` without a
    `file`, `active` once `file` is uploaded (a file the upload refuses raises its error and
    leaves the image in `error`)."""
    made = image_services.image_create(
        actor=SYSTEM,
        tenant=tenant,
        name=name,
        disk_format=disk_format,
        **fields,
    )
    return upload(made, file) if file is not None else made


def public_image(file: Path, name: str = "andromede-test", **fields: Any) -> Image:
    """An active public image, as an operator publishes one."""
    return image(None, name, file=file, **fields)


# ---- keypairs and server groups ---------------------------------------------------------------


def keypair(tenant: Tenant, public_key: str, name: str = "laptop") -> KeyPair:
    return keypair_services.keypair_import(
        actor=SYSTEM, tenant=tenant, name=name, public_key=public_key
    )


def server_group(tenant: Tenant, name: str = "g", policy: str = "anti-affinity") -> ServerGroup:
    return server_group_services.server_group_create(
        actor=SYSTEM, tenant=tenant, name=name, policy=policy
    )


# ---- instances --------------------------------------------------------------------------------


def instance(
    tenant: Tenant,
    *,
    flavor: Flavor,
    image: Image,
    name: str = "web-1",
    **options: Any,
) -> tuple[Instance, Operation]:
    """A `building` instance (placed, addressed, its create operation queued)."""
    return instance_services.instance_create(
        actor=SYSTEM,
        tenant=tenant,
        name=name,
        flavor=flavor,
        image=image,
        **options,
    )


def run(operation: Operation) -> Operation:
    """Run a queued operation as a worker would; it must succeed."""
    outcome = run_operation(operation.pk)
    assert outcome == "succeeded", (operation.action, outcome)
    operation.refresh_from_db()
    return operation


def active_instance(tenant: Tenant, **kwargs: Any) -> Instance:
    """An instance built by the worker on the fake hypervisor: active and running."""
    made, operation = instance(tenant, **kwargs)
    run(operation)
    made.refresh_from_db()
    return made


def stopped_instance(tenant: Tenant, **kwargs: Any) -> Instance:
    made = active_instance(tenant, **kwargs)
    run(instance_services.instance_stop(actor=SYSTEM, instance=made))
    made.refresh_from_db()
    return made


def resized_instance(tenant: Tenant, *, to: Flavor, **kwargs: Any) -> Instance:
    """An instance resized to `to` and waiting for its owner to confirm or revert."""
    made = active_instance(tenant, **kwargs)
    run(resize_services.instance_resize(actor=SYSTEM, instance=made, flavor=to))
    made.refresh_from_db()
    return made


# ---- volumes ----------------------------------------------------------------------------------


def volume_type(
    name: str = "standard", max_size_gb: int = 1000, *, tenants: Sequence[str] = (), **fields: Any
) -> VolumeType:
    """A volume type as an operator declares one (public unless `is_public=False`)."""
    return volume_type_services.volume_type_create(
        actor=SYSTEM, name=name, max_size_gb=max_size_gb, tenant_slugs=tenants, **fields
    )


def volume(
    tenant: Tenant, *, volume_type: VolumeType, name: str = "data", size_gb: int = 1, **options: Any
) -> tuple[Volume, Operation]:
    """A `creating` volume (placed, its create operation queued)."""
    return volume_services.volume_create(
        actor=SYSTEM, tenant=tenant, name=name, size_gb=size_gb, volume_type=volume_type,
        **options,
    )  # fmt: skip


def available_volume(tenant: Tenant, **kwargs: Any) -> Volume:
    """A volume made by the worker on the fake hypervisor: available."""
    made, operation = volume(tenant, **kwargs)
    run(operation)
    made.refresh_from_db()
    return made
