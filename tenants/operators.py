"""Who is an operator (review L7): an active staff account that holds the dedicated
`tenants.operate_cloud` permission and is no tenant's member. `is_staff` alone only opens the
Django admin's door; the operators' API, operator tokens and the operator flag shown to the
user all ask this one predicate, so making a tenant member staff (by mistake or by a
compromised admin account) grants nothing."""

from __future__ import annotations

from typing import Any

from tenants.models import Membership

OPERATOR_PERMISSION = "tenants.operate_cloud"


def is_operator(user: Any) -> bool:
    """Whether `user` may act as an operator (API, operator tokens)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if not (user.is_active and user.is_staff):
        return False
    if not user.has_perm(OPERATOR_PERMISSION):
        return False
    return not Membership.objects.filter(user_id=user.pk).exists()
