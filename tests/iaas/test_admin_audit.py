"""M10: every write through the operator admin is in the audit chain (users and permissions
included); a zone's jurisdiction is fixed once it has hosts; tenants' keys cannot be deleted in
bulk; a tenant's residency is validated like in the API."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from compute.models import KeyPair
from iaas.audit.verify import verify_chain
from iaas.models import AuditEvent
from tests import factories

pytestmark = [pytest.mark.django_db]
User = get_user_model()


def test_creating_a_superuser_in_the_admin_is_audited(admin_client, admin_user):
    response = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "mallory",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content[:500]
    mallory = User.objects.get(username="mallory")
    event = AuditEvent.objects.get(action="admin.add")
    assert (event.actor_id, event.target_type, event.target_id, event.credential) == (
        admin_user.pk,
        "auth.user",
        str(mallory.pk),
        "admin-session",
    )
    assert verify_chain().ok


def test_a_zones_jurisdiction_is_fixed_once_it_has_hosts(admin_client):
    zone = factories.zone("fr-par-1", "FR")
    factories.host("hv1", zone)
    url = f"/admin/hosts/zone/{zone.pk}/change/"
    form = {
        "name": zone.name, "region": zone.region_id, "site": zone.site, "city": zone.city,
        "country": zone.country, "jurisdiction": "US",
    }  # fmt: skip
    admin_client.post(url, form)
    zone.refresh_from_db()
    assert zone.jurisdiction == "FR"


def test_tenants_keys_cannot_be_deleted_in_bulk(admin_client, make_tenant, ssh_public_keys):
    tenant = make_tenant("acme")
    key = factories.keypair(tenant, ssh_public_keys["ed25519"])
    page = admin_client.get("/admin/compute/keypair/")
    assert b"delete_selected" not in page.content
    admin_client.post(
        "/admin/compute/keypair/",
        {"action": "delete_selected", "_selected_action": [str(key.pk)], "post": "yes"},
    )
    assert KeyPair.objects.filter(pk=key.pk).exists()


def test_a_single_delete_in_the_admin_is_audited(admin_client, make_tenant, ssh_public_keys):
    tenant = make_tenant("acme")
    key = factories.keypair(tenant, ssh_public_keys["ed25519"])
    response = admin_client.post(f"/admin/compute/keypair/{key.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not KeyPair.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action="admin.delete")
    assert (event.target_type, event.target_id) == ("compute.keypair", str(key.pk))


@pytest.mark.parametrize(
    ("typed", "stored"), [('["fr"]', ["FR"]), ('["xx1"]', None), ('"FR"', None)]
)
def test_a_tenants_residency_is_validated_in_the_admin(admin_client, make_tenant, typed, stored):
    tenant = make_tenant("acme")
    form = {
        "name": tenant.name, "slug": tenant.slug, "status": tenant.status, "residency": typed,
        "quotas-TOTAL_FORMS": "0", "quotas-INITIAL_FORMS": "0",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    }  # fmt: skip
    admin_client.post(f"/admin/tenants/tenant/{tenant.pk}/change/", form)
    tenant.refresh_from_db()
    assert tenant.residency == (stored or ["FR"])
    if stored is None:
        assert not AuditEvent.objects.filter(action__in=["tenant.update", "admin.change"]).exists()
