"""An image can no longer size a disk (security review H1): a qcow2's virtual size costs its
uploader nothing, so a root disk is exactly its flavor's disk — what quota and placement
counted — and an image larger than the flavor is refused on create, rebuild and resize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compute.models import Allocation, Instance
from hosts import naming
from hosts.hypervisors import hypervisor_for
from images.models import Image
from network.models import Port
from operations.models import Operation
from operations.worker import run_operation
from tests import factories
from tests.support.instance_api import active_instance, create, verb

GIB = 1024**3
pytestmark = pytest.mark.django_db


@pytest.fixture
def two_gib_image(cloud: Any, tmp_path: Path) -> Image:
    """The tenant's own image: a 2 GiB disk in a file of a few hundred KiB, uploaded through
    the API like any image (declaring no minimum disk)."""
    client = cloud.client
    made = client.post("/api/v1/images", {"name": "big", "disk_format": "qcow2"}, format="json")
    assert made.status_code == 201, made.content
    file = factories.qcow2(tmp_path / "big.qcow2", "2G")
    uploaded = client.put(
        f"/api/v1/images/{made.json()['id']}/file",
        data=file.read_bytes(),
        content_type="application/octet-stream",
    )
    assert uploaded.status_code == 200, uploaded.content
    return Image.objects.get(pk=made.json()["id"])


def test_an_upload_says_what_disk_the_image_needs_whatever_was_declared(
    two_gib_image: Image,
) -> None:
    assert two_gib_image.virtual_size_bytes == 2 * GIB
    assert two_gib_image.min_disk_gb == 2  # declared 0; the file says 2


def _rows() -> dict[str, int]:
    return {
        "instances": Instance.objects.count(),
        "allocations": Allocation.objects.count(),
        "ports": Port.objects.count(),
        "operations": Operation.objects.count(),
    }


def test_creating_from_an_image_larger_than_the_flavor_is_refused_and_creates_nothing(
    cloud: Any, two_gib_image: Image
) -> None:
    before, quotas = _rows(), cloud.client.get("/api/v1/quotas").json()

    answer = create(cloud.client, two_gib_image)  # flavor small: 1 GiB

    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert error["code"] == "flavor_disk_smaller_than_image"
    assert error["details"] == {"image_virtual_size_bytes": 2 * GIB, "flavor_disk_gb": 1}
    assert _rows() == before
    assert cloud.client.get("/api/v1/quotas").json() == quotas
    cloud.host.refresh_from_db()
    assert cloud.host.allocated_disk_gb == 0


def test_an_image_that_fits_the_flavor_boots(cloud: Any, two_gib_image: Image) -> None:
    factories.flavor("medium", vcpus=1, memory_mb=256, disk_gb=2)
    answer = create(cloud.client, two_gib_image, flavor="medium")
    assert answer.status_code == 202, answer.content
    assert answer.json()["instance"]["disk_gb"] == 2


def test_rebuilding_from_an_image_larger_than_the_flavor_is_refused(
    cloud: Any, two_gib_image: Image
) -> None:
    instance_id = active_instance(cloud)
    before = Instance.objects.filter(pk=instance_id).values().get()

    answer = verb(cloud.client, instance_id, "rebuild", {"image": str(two_gib_image.pk)})

    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "flavor_disk_smaller_than_image"
    assert Instance.objects.filter(pk=instance_id).values().get() == before
    assert not Operation.objects.filter(action="instance.rebuild").exists()


def test_resizing_to_a_flavor_smaller_than_the_image_is_refused(cloud: Any) -> None:
    instance_id = active_instance(cloud)
    factories.flavor("wider", vcpus=2, memory_mb=512, disk_gb=1)
    # An image inspected before this rule, whose instance the old rule sized by the image:
    # only the ORM can make that state now.
    Image.objects.filter(pk=cloud.image.pk).update(virtual_size_bytes=3 * GIB)
    before = Instance.objects.filter(pk=instance_id).values().get()

    answer = verb(cloud.client, instance_id, "resize", {"flavor": "wider"})

    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "flavor_disk_smaller_than_image"
    assert Instance.objects.filter(pk=instance_id).values().get() == before


def test_the_root_disk_is_exactly_the_flavors_disk(cloud: Any) -> None:
    answer = create(cloud.client, cloud.image)
    instance_id, operation_id = answer.json()["instance"]["id"], answer.json()["operation"]["id"]
    # An image whose virtual size grew past the flavor after the create was accepted (the
    # old worker sized the disk by the image): only the ORM can make that state.
    Image.objects.filter(pk=cloud.image.pk).update(virtual_size_bytes=64 * GIB)

    assert run_operation(operation_id) == "succeeded"

    pool = naming.storage_pool(cloud.host.name, "instances")
    disk = hypervisor_for(cloud.host).storage_volume_info(pool, naming.root_disk(instance_id))
    assert disk.capacity_bytes == 1 * GIB == Instance.objects.get(pk=instance_id).disk_gb * GIB
