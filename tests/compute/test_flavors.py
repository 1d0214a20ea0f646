"""Flavors: operators define them (public, or private to listed tenants); a tenant sees and
boots only the public ones and the private ones shared with it."""

from __future__ import annotations

import pytest

from compute.models import Flavor, Instance
from iaas.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db
ADMIN_URL = "/api/v1/admin/flavors"
BODY = {"name": "c1-medium", "vcpus": 2, "memory_mb": 2048, "disk_gb": 20}


@pytest.fixture
def operator(make_caller):
    return make_caller(None, operator=True).client()


def names(client) -> list[str]:
    answer = client.get("/api/v1/flavors")
    assert answer.status_code == 200, answer.content
    return sorted(f["name"] for f in answer.json()["results"])


def test_an_operator_creates_a_public_flavor_every_tenant_sees(operator, make_tenant, make_caller):
    answer = operator.post(ADMIN_URL, BODY, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json() | BODY == answer.json()
    assert answer.json()["is_public"] is True
    event = AuditEvent.objects.get(action="flavor.create", outcome="success")
    assert event.details["name"] == "c1-medium"
    for slug in ("acme", "globex"):
        assert names(make_caller(make_tenant(slug), "reader").client()) == ["c1-medium"]


def test_a_private_flavor_is_seen_and_booted_only_by_its_tenants(
    operator, make_tenant, make_caller, image_store, tiny_qcow2
):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    body = BODY | {"name": "gpu-1", "is_public": False, "tenants": ["acme"]}
    answer = operator.post(ADMIN_URL, body, format="json")
    assert answer.status_code == 201, answer.content
    flavor_id = answer.json()["id"]
    acme_client = make_caller(acme, "member").client()
    globex_client = make_caller(globex, "member").client()
    assert names(acme_client) == ["gpu-1"]
    assert acme_client.get(f"/api/v1/flavors/{flavor_id}").status_code == 200
    assert names(globex_client) == []
    assert globex_client.get(f"/api/v1/flavors/{flavor_id}").status_code == 404
    # Booting with it: refused for globex, by name and by id.
    image = factories.public_image(tiny_qcow2, "debian")
    for ref in ("gpu-1", flavor_id):
        body = {"name": "x", "flavor": ref, "image": str(image.pk)}
        refused = globex_client.post("/api/v1/instances", body, format="json")
        assert refused.status_code == 400, refused.content
        assert refused.json()["error"]["code"] == "unknown_flavor"
    assert not Instance.objects.exists()


def test_a_disabled_flavor_is_hidden_from_tenants(operator, make_tenant, make_caller):
    assert operator.post(ADMIN_URL, BODY, format="json").status_code == 201
    # The ORM: no service or endpoint disables a flavor yet.
    Flavor.objects.filter(name="c1-medium").update(disabled=True)
    assert names(make_caller(make_tenant("acme"), "member").client()) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (BODY, 409, "already_exists"),  # the name is taken (see the fixture below)
        (BODY | {"name": "other", "tenants": ["nobody"]}, 400, "unknown_tenant"),
        (BODY | {"name": "other", "vcpus": 0}, 400, None),
        (BODY | {"name": "other", "surprise": 1}, 400, None),
        ({"name": "other"}, 400, None),
        # Review item 12: a boolean is JSON true or false, not "yes" or 1; a name has no spaces.
        (BODY | {"name": "other", "is_public": "yes"}, 400, None),
        (BODY | {"name": "other", "is_public": 1}, 400, None),
        (BODY | {"name": "a1 tiny"}, 400, None),
        (BODY | {"name": "a1/tiny"}, 400, None),
    ],
)
def test_refusals_create_nothing(operator, body, status, code):
    assert operator.post(ADMIN_URL, BODY, format="json").status_code == 201
    before = list(Flavor.objects.values_list("name", flat=True))
    answer = operator.post(ADMIN_URL, body, format="json")
    assert answer.status_code == status, answer.content
    if code:
        assert answer.json()["error"]["code"] == code
    assert list(Flavor.objects.values_list("name", flat=True)) == before
    assert AuditEvent.objects.filter(action="flavor.create", outcome="success").count() == 1


def test_tenants_cannot_define_flavors(make_tenant, make_caller):
    admin = make_caller(make_tenant("acme"), "admin").client()
    assert admin.post(ADMIN_URL, BODY, format="json").status_code == 403
    assert not Flavor.objects.exists()


def test_a_flavor_name_may_have_dots(operator, make_tenant, make_caller):
    """Review item 12: `a1.tiny` is a flavor name (the schema's pattern refused it, and so did
    the model's slug validator)."""
    answer = operator.post(ADMIN_URL, BODY | {"name": "a1.tiny"}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["name"] == "a1.tiny"
    assert names(make_caller(make_tenant("acme"), "reader").client()) == ["a1.tiny"]
    Flavor.objects.get(name="a1.tiny").full_clean()
