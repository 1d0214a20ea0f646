"""The portal's landing and tenant pages show only the caller's active tenants."""

from __future__ import annotations

from django.test import Client

from tenants.models import Membership, Role, Tenant


def test_a_suspended_tenant_is_neither_listed_nor_reachable(make_tenant, make_caller):
    """Review L8: the portal listed the keypairs of suspended tenants, which the API refuses."""
    active, suspended = make_tenant("acme"), make_tenant("frozen")
    reader = make_caller(active, Role.READER)
    Membership.objects.create(user=reader.user, tenant=suspended, role=Role.READER)
    Tenant.objects.filter(pk=suspended.pk).update(status=Tenant.Status.SUSPENDED)
    client = Client()
    client.force_login(reader.user)

    landing = client.get("/")
    page = client.get(landing["Location"])

    assert landing.status_code == 302
    assert landing["Location"] == "/t/acme/"
    assert page.status_code == 200
    assert "frozen" not in page.content.decode()
    assert client.get("/t/frozen/").status_code == 404


def test_another_tenants_dashboard_is_a_404(make_tenant, make_caller):
    make_tenant("other")
    member = make_caller(make_tenant("acme"), Role.MEMBER)
    client = Client()
    client.force_login(member.user)

    assert client.get("/t/other/").status_code == 404
    assert client.get("/t/acme/").status_code == 200


def test_portal_pages_and_refusals_are_html_in_french_with_the_csp(make_tenant, make_caller):
    reader = make_caller(make_tenant("acme"), Role.READER)
    client = Client()
    client.force_login(reader.user)

    missing = client.get("/t/other/")
    refused = client.post("/t/acme/keypairs/generate/", {"name": "x"})

    assert missing.status_code == 404
    assert '<html lang="fr">' in missing.content.decode()
    assert "Introuvable" in missing.content.decode()
    assert refused.status_code == 403
    assert "Il faut le rôle membre" in refused.content.decode()
    for answer in (missing, refused, client.get("/t/acme/")):
        assert "script-src 'self'" in answer["Content-Security-Policy"]
    assert "Content-Security-Policy" not in client.get("/api/v1/").headers
