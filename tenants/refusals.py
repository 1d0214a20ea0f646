"""Who a refused API request is recorded against (iaas.audit.refusals): refused requests by
authenticated callers, in their tenant (reads are counted there and audited in aggregate),
and every refused bearer token whose secret matched, one by one (a revoked or expired token
still in use is worth knowing about). Anonymous requests, with no
credentials or with a bearer token that is malformed or names no token, are not recorded one
by one, so unauthenticated noise cannot flood the log: the latter are counted and summarised
(tenants.auth_noise)."""

from __future__ import annotations

import uuid
from typing import Any

from iaas.audit import Actor
from iaas.audit.refusals import Attribution, action_name
from tenants import auth_noise
from tenants.authentication import TokenRefused
from tenants.context import actor_from_request, source_address
from tenants.models import ApiToken

TOKEN_REFUSALS = {"invalid_token", "token_expired", "token_revoked", "account_disabled"}


def attribute_refusal(request: Any, view: Any, code: str) -> Attribution | None:
    if code in TOKEN_REFUSALS:
        refused = getattr(request, "_andromede_token_refused", None)
        token = refused.token if isinstance(refused, TokenRefused) else None
        if token is None:
            auth_noise.note(auth_noise.Kind.UNKNOWN_TOKEN, source_address(request))
            return None
        actor = Actor(
            user_id=token.user_id,
            label=token.user.get_username(),
            credential=f"token:{token.key_id}",
            source_address=source_address(request),
        )
        return Attribution(actor, "auth.token", token.tenant_id, one_by_one=True)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return Attribution(actor_from_request(request), action_name(request, view), _tenant_id(request))


def _tenant_id(request: Any) -> uuid.UUID | None:
    """The tenant the attempt is recorded in: the one the request acted in, else the one its
    token names (an operator route resolves no tenant, yet a tenant's token refused there is
    that tenant's business); None for a session outside any tenant."""
    context = getattr(request, "_tenant_context", None)
    if context is not None:
        return context.tenant.pk
    auth = getattr(request, "auth", None)
    return auth.tenant_id if isinstance(auth, ApiToken) else None
