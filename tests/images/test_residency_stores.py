"""Operators declare image stores, each in a zone (/api/v1/admin/image-stores); the generic
operator API cases (list, detail, create, refusals) run on them too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iaas.models import AuditEvent
from images.models import ImageStore
from tests.support.api_cases import OperatorCreateCases, OperatorDetailCases, OperatorListCases
from tests.support.api_checks import assert_error, business_rows
from tests.support.api_world import World


class TestOperatorImageStores(OperatorListCases, OperatorDetailCases, OperatorCreateCases):
    url = "/api/v1/admin/image-stores"
    model = ImageStore
    kind = "image_store"
    audit_resource = "image_store"

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "de-fra", "zone": world.platform.zone.name, "path": str(world.qcow2.parent)}


@pytest.mark.django_db
def test_an_operator_declares_a_zones_image_store_and_it_is_audited(
    cloud, make_caller, make_tenant, tmp_path: Path
):
    operator = make_caller(None, operator=True).client()
    directory = tmp_path / "par-store"
    directory.mkdir()

    answer = operator.post(
        "/api/v1/admin/image-stores",
        {"name": "fr-par", "zone": "fr-par-1", "path": str(directory)},
        format="json",
    )

    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["zone"], body["jurisdiction"], body["directory"]) == (
        "fr-par-1", "FR", str(directory),
    )  # fmt: skip
    event = AuditEvent.objects.get(action="image_store.create", target_id=body["id"])
    assert event.details["zone"] == "fr-par-1"
    listed = operator.get("/api/v1/admin/image-stores").json()["results"]
    assert sorted(s["name"] for s in listed) == ["default", "fr-par"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "zone": "nowhere", "path": "/tmp"}, "unknown_zone"),  # noqa: S108
        ({"name": "x", "zone": "fr-par-1", "path": "relative/dir"}, "invalid"),
        ({"name": "x", "zone": "fr-par-1", "path": "/does/not/exist"}, "store_directory_unusable"),
        ({"name": "x", "zone": "fr-par-1", "path": "/etc/hostname"}, "store_directory_unusable"),
    ],
)
def test_a_store_in_no_zone_or_no_usable_directory_is_refused(cloud, make_caller, body, code):
    operator = make_caller(None, operator=True).client()
    before = business_rows()

    answer = operator.post("/api/v1/admin/image-stores", body, format="json")

    assert_error(answer, 400, code)
    assert business_rows() == before


@pytest.mark.django_db
def test_with_no_store_at_all_publishing_an_image_is_refused_and_says_how_to_declare_one(
    settings, make_caller
):
    settings.IMAGE_STORE_ZONE = ""  # no default store, and none declared
    operator = make_caller(None, operator=True).client()
    before = business_rows()

    answer = operator.post(
        "/api/v1/admin/images", {"name": "debian", "disk_format": "qcow2"}, format="json"
    )

    error = assert_error(answer, 409, "no_image_store")
    assert "/api/v1/admin/image-stores" in error["message"]
    assert business_rows() == before
