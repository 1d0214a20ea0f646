"""The image APIs through the generic cases (tests/support/api_cases.py): the tenants'
(their private images; public ones are covered in test_images.py) and the operators'."""

from __future__ import annotations

from typing import Any, ClassVar

from images.models import Image
from tests.support.api_cases import (
    Call,
    OperatorCreateCases,
    OperatorDeleteCases,
    OperatorDetailCases,
    OperatorListCases,
    TenantCreateCases,
    TenantDeleteCases,
    TenantDetailCases,
    TenantListCases,
)
from tests.support.api_world import World

UPLOAD = Call(
    "PUT",
    "file",
    lambda w: w.qcow2.read_bytes(),
    content_type="application/octet-stream",
    verb="upload",
)


class TestImages(TenantListCases, TenantDetailCases, TenantCreateCases, TenantDeleteCases):
    url = "/api/v1/images"
    model = Image
    kind = "image"
    audit_resource = "image"
    detail_calls: ClassVar[tuple[Call, ...]] = (UPLOAD,)

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "new-image", "disk_format": "qcow2"}


class TestOperatorImages(
    OperatorListCases, OperatorDetailCases, OperatorCreateCases, OperatorDeleteCases
):
    """Operators see every tenant's images, publish public ones, upload and delete any."""

    url = "/api/v1/admin/images"
    model = Image
    kind = "image"
    audit_resource = "image"
    detail_calls: ClassVar[tuple[Call, ...]] = (UPLOAD,)

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "new-public", "disk_format": "qcow2"}
