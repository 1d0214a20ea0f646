"""An image's copy on a host: the base that instance root disks and volumes are made from.

Cached in the host's images pool under `image-<image id>` (hosts.naming), keyed by the image
id, whose content never changes; only on a host the image owner's residency allows
(images.services.stores.host_zone_check). Worker steps of any app that reads images on a host
call `cache_image`: it is idempotent, so a step may run it twice.
"""

from __future__ import annotations

from hosts import naming
from hosts.models import Host
from hypervisor.base import Hypervisor, NotFound, StorageVolumeSpec
from images.models import Image
from images.services.images import image_file_path
from images.services.stores import host_zone_check


def stores_no_data(host: Host) -> bool:
    """libvirt's fake hypervisor (domain type `test`) keeps no volume data: nothing is
    transferred to or from it, nor grown. (Its driver skips wipes by itself.)"""
    return host.domain_type == Host.DomainType.TEST


def images_pool(host: Host) -> str:
    return naming.storage_pool(host.name, "images")


def cache_image(hv: Hypervisor, host: Host, image: Image) -> str:
    """The image's cached copy on `host` (made and uploaded if missing or short): returns
    its volume name in the images pool. ResidencyUnsatisfiable if the owner's residency does
    not allow the host's zone."""
    host_zone_check(image, host.zone)
    pool = images_pool(host)
    name = naming.cached_image(image.pk)
    try:
        info = hv.storage_volume_info(pool, name)
        if info.capacity_bytes >= (image.size_bytes or 0) and not stores_no_data(host):
            return name
    except NotFound:
        pass
    hv.create_storage_volume(
        StorageVolumeSpec(
            pool=pool,
            name=name,
            capacity_bytes=max(image.size_bytes or 0, 1),
            format=image.disk_format,
        )
    )
    if stores_no_data(host):
        return name  # nothing to transfer
    with open(image_file_path(image), "rb") as source:
        hv.upload_storage_volume(pool, name, source, image.size_bytes or 0)
    return name
