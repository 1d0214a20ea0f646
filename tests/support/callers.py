"""Who calls the API in tests: a user acting in a tenant (or an operator) through a bearer
token, made through the services (`make_caller` in tests/conftest.py is `caller_maker()`)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from iaas.audit import Actor
from tenants import services
from tenants.models import Role, Tenant

SYSTEM = Actor.system("tests")
PASSWORD = "correct horse battery staple"


@dataclass
class Caller:
    """A user acting in a tenant through a bearer token (an operator: no tenant)."""

    user: Any  # the auth user model
    tenant: Tenant | None
    role: str
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        return client

    def bearer(self) -> dict[str, Any]:
        """Request headers presenting this caller's token (for a shared client)."""
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}


def caller_maker() -> Callable[..., Caller]:
    """A function making callers: make(tenant, role) → a new user, member of `tenant` with
    `role`, and a token with the same role; make(None, operator=True) → an operator (a staff
    user) with an operator token. Usernames are numbered per maker."""
    numbers = itertools.count(1)

    def make(tenant: Tenant | None, role: str = Role.MEMBER, *, operator: bool = False) -> Caller:
        username = f"{'op' if operator else role}{next(numbers)}-{tenant.slug if tenant else 'ops'}"
        user = get_user_model().objects.create_user(
            username=username, password=PASSWORD, is_staff=operator
        )
        if tenant is not None:
            services.membership_add(actor=SYSTEM, tenant=tenant, username=username, role=role)
        if operator:
            services.operator_grant(actor=SYSTEM, username=username)
        # As a user signed in with its second factor would make it (tests/tenants/test_mfa.py
        # covers tokens made without one).
        _, secret = services.token_create(
            actor=SYSTEM,
            user=user,
            tenant=tenant,
            name="test",
            role=None if operator else role,
            session_passed_mfa=True,
        )
        return Caller(user=user, tenant=tenant, role=role, token=secret)

    return make
