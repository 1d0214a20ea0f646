"""The portal's landing page lists the caller's tenants and their keypairs."""

from __future__ import annotations

from django.test import Client

from compute.services.keypairs import keypair_import
from iaas.audit import Actor
from tenants.models import Membership, Role, Tenant

SYSTEM = Actor.system("test")


def test_a_suspended_tenants_keypairs_are_not_shown(make_tenant, make_caller, ssh_public_keys):
    """Review L8: the portal listed the keypairs of suspended tenants, which the API refuses."""
    active, suspended = make_tenant("acme"), make_tenant("frozen")
    reader = make_caller(active, Role.READER)
    Membership.objects.create(user=reader.user, tenant=suspended, role=Role.READER)
    keypair_import(
        actor=SYSTEM, tenant=active, name="shown-key", public_key=ssh_public_keys["rsa2048"]
    )
    keypair_import(
        actor=SYSTEM, tenant=suspended, name="hidden-key", public_key=ssh_public_keys["ed25519"]
    )
    Tenant.objects.filter(pk=suspended.pk).update(status=Tenant.Status.SUSPENDED)
    client = Client()
    client.force_login(reader.user)

    page = client.get("/").content.decode()

    assert "shown-key" in page
    assert "hidden-key" not in page
    assert "frozen" not in page
