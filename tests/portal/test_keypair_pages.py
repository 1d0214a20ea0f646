"""SSH keys in the portal: import, generate (the private key shown once, never kept),
delete with confirmation; readers and other tenants as in the API."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from compute.models import KeyPair
from iaas.models import AuditEvent
from tenants.models import Role
from tests.support.portal_client import portal_client

pytestmark = pytest.mark.django_db


def portal(user, language: str = "en") -> Client:
    return portal_client(user, language)


def test_generating_a_key_shows_the_private_half_once_and_keeps_only_the_public(
    make_tenant, make_caller
):
    member = make_caller(make_tenant("acme"), Role.MEMBER)
    client = portal(member.user)

    answer = client.post("/t/acme/keypairs/generate/", {"name": "made-here"})

    page = answer.content.decode()
    private = re.search(r"-----BEGIN OPENSSH PRIVATE KEY-----.*?-----END OPENSSH PRIVATE KEY-----",
                        page, re.S)  # fmt: skip
    assert answer.status_code == 200
    assert private is not None
    assert answer["Cache-Control"].startswith("max-age=0")
    keypair = KeyPair.objects.get(name="made-here")
    assert keypair.public_key.startswith("ssh-ed25519 ")
    body = private.group(0).split("\n")[1]
    assert body not in keypair.public_key
    assert not AuditEvent.objects.filter(details__icontains=body[:20]).exists()
    listing = client.get("/t/acme/keypairs/").content.decode()
    assert "made-here" in listing
    assert "PRIVATE KEY" not in listing


def test_a_bad_public_key_is_refused_in_the_users_language(make_tenant, make_caller):
    member = make_caller(make_tenant("acme"), Role.MEMBER)
    client = portal(member.user, language="fr")

    answer = client.post(
        "/t/acme/keypairs/import/", {"name": "bad", "public_key": "ssh-dss AAAAB3Nza"}
    )

    assert answer.status_code == 400
    assert "clé publique acceptée" in answer.content.decode()
    assert not KeyPair.objects.exists()


def test_readers_and_strangers(make_tenant, make_caller, ssh_public_keys):
    acme = make_tenant("acme")
    member = portal(make_caller(acme, Role.MEMBER).user)
    member.post(
        "/t/acme/keypairs/import/", {"name": "laptop", "public_key": ssh_public_keys["ed25519"]}
    )
    keypair = KeyPair.objects.get(name="laptop")
    reader = portal(make_caller(acme, Role.READER).user)
    stranger = portal(make_caller(make_tenant("other"), Role.MEMBER).user)

    listing = reader.get("/t/acme/keypairs/").content.decode()
    assert "laptop" in listing
    assert "/delete/" not in listing
    assert "Import a public key" not in listing
    assert reader.post(f"/t/acme/keypairs/{keypair.pk}/delete/").status_code == 403
    assert reader.post("/t/acme/keypairs/generate/", {"name": "x"}).status_code == 403
    assert stranger.get(f"/t/other/keypairs/{keypair.pk}/delete/").status_code == 404
    assert stranger.post(f"/t/other/keypairs/{keypair.pk}/delete/").status_code == 404
    assert stranger.get("/t/acme/keypairs/").status_code == 404
    assert list(KeyPair.objects.values_list("name", flat=True)) == ["laptop"]
    confirm = member.get(f"/t/acme/keypairs/{keypair.pk}/delete/")
    assert b"Delete the key laptop?" in confirm.content
    assert member.post(f"/t/acme/keypairs/{keypair.pk}/delete/").status_code == 302
    assert not KeyPair.objects.exists()
