"""The tenancy APIs through the generic cases (tests/support/api_cases.py): tokens and
members as a tenant sees them, tenants and the whole audit log as operators do."""

from __future__ import annotations

from typing import Any, ClassVar

from iaas.models import AuditEvent
from tenants.models import ApiToken, Membership, Role, Tenant
from tests.support.api_cases import (
    Call,
    OperatorCreateCases,
    OperatorDetailCases,
    OperatorListCases,
    TenantCreateCases,
    TenantDeleteCases,
    TenantDetailCases,
    TenantListCases,
)
from tests.support.api_checks import assert_error
from tests.support.api_world import World


class TestTokens(TenantListCases, TenantDetailCases, TenantCreateCases, TenantDeleteCases):
    """A caller's own tokens: any role manages them; DELETE revokes."""

    url = "/api/v1/tokens"
    model = ApiToken
    kind = "token"
    audit_resource = "token"
    create_role = Role.READER
    delete_role = Role.READER
    delete_verb = "revoke"

    def make(self, world: World, side: str = "a", caller: str = "") -> str:
        owner = caller or {"a": "a_admin", "b": "b_admin"}[side]
        return str(world.token_of(owner).pk)

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "new-token", "role": Role.READER}

    def assert_gone(self, api: Any, world: World, caller: str, pk: str, answer: Any) -> None:
        """Revoked: still shown to its owner (with when), and it no longer opens anything."""
        shown = api.get(self.detail_url(pk), **world.caller(caller).bearer())
        assert shown.status_code == 200, shown.content
        assert shown.json()["revoked_at"] is not None
        secret = world.secrets[caller]
        refused = api.get(self.url, HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert_error(refused, 401, "token_revoked")


class TestMembers(TenantListCases, TenantDetailCases, TenantDeleteCases):
    """Everyone lists the members; only admins remove them (and invite new ones: a create
    makes an invitation, not a member, so its cases are in tests/tenants/test_invitations.py)."""

    url = "/api/v1/members"
    model = Membership
    kind = "member"
    audit_resource = "membership"
    delete_role = Role.ADMIN
    unknown_pk = "999999"


class TestOperatorTenants(OperatorListCases, OperatorDetailCases, OperatorCreateCases):
    """Tenants, and their quota limits (GET and PUT /admin/tenants/{id}/quotas)."""

    url = "/api/v1/admin/tenants"
    model = Tenant
    kind = "tenant"
    audit_resource = "tenant"
    detail_calls: ClassVar[tuple[Call, ...]] = (
        Call("GET", "quotas"),
        Call("PUT", "quotas", lambda w: {"limits": {"keypairs": 3}}, verb="quotas"),
    )

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "Charlie", "slug": "charlie"}


class TestOperatorAuditEvents(OperatorListCases):
    """Every tenant's audit events (and the platform's own)."""

    url = "/api/v1/admin/audit-events"
    model = AuditEvent
    kind = "audit_event"
