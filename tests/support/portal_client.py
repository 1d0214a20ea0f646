"""A Django test client signed in to the portal as a user, in a chosen language (the portal
speaks French unless the language cookie says otherwise), with a session that passed the
second factor when asked (tests/support/mfa.py)."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tests.support.mfa import sign_in_verified


def portal_client(user: Any, language: str = "en", *, verified: bool = False) -> Client:
    client = Client()
    client.cookies["andromede_language"] = language
    if verified:
        return sign_in_verified(client, user)
    client.force_login(user)
    return client
