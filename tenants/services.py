"""The only code that writes tenants, memberships, tokens and quota limits.

Every function runs in one transaction and writes its audit event in it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.db import IntegrityError, transaction
from django.utils import timezone

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest, NotFoundError, PermissionDeniedError
from tenants import mfa, tokens
from tenants.models import ApiToken, Invitation, Membership, Quota, Role, Tenant
from tenants.operators import OPERATOR_PERMISSION, is_operator
from tenants.quotas import check_resource

User = get_user_model()

ISO_COUNTRY_LENGTH = 2


INVITATION_LIFETIME = timedelta(days=7)


def validate_residency(residency: list[str]) -> list[str]:
    codes = sorted({code.upper() for code in residency})
    if not codes or any(len(c) != ISO_COUNTRY_LENGTH or not c.isalpha() for c in codes):
        raise InvalidRequest(
            "A residency policy is a non-empty list of ISO 3166 country codes, e.g. ['FR'].",
            details={"residency": residency},
        )
    return codes


@transaction.atomic
def tenant_create(
    *, actor: Actor, name: str, slug: str, residency: list[str] | None = None
) -> Tenant:
    codes = validate_residency(residency or list(settings.DEFAULT_RESIDENCY))
    if Tenant.objects.filter(slug=slug).exists():
        raise ConflictError(f"A tenant with slug {slug!r} exists.", code="already_exists")
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(name=name, slug=slug, residency=codes)
    except IntegrityError as exc:
        raise ConflictError(f"A tenant with slug {slug!r} exists.", code="already_exists") from exc
    audit_record(
        actor=actor,
        action="tenant.create",
        tenant_id=tenant.id,
        target=tenant,
        details={"name": name, "residency": codes},
    )
    return tenant


def _lock_tenant(tenant: Tenant) -> None:
    Tenant.objects.select_for_update().only("pk").get(pk=tenant.pk)


def _admin_count(tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant, role=Role.ADMIN).count()


def _active_user(username: str) -> Any:
    """The active account named `username`; 400 `unknown_user` otherwise (operators' and
    commands' paths only: invitations never tell whether an account exists)."""
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise InvalidRequest(
            f"No active user account is named {username!r}.",
            code="unknown_user",
            details={"username": username},
        )
    return user


@transaction.atomic
def membership_add(*, actor: Actor, tenant: Tenant, username: str, role: str) -> Membership:
    """Add an existing user account to the tenant. Operator (staff) accounts are kept apart
    from tenants and cannot be added."""
    user = _active_user(username)
    if user.is_staff:
        raise InvalidRequest("Operator accounts cannot be tenant members.", code="operator_account")
    _lock_tenant(tenant)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(user=user, tenant=tenant, role=Role(role))
    except IntegrityError as exc:
        raise ConflictError(
            f"{username} is already a member of this tenant.", code="already_member"
        ) from exc
    audit_record(
        actor=actor,
        action="membership.create",
        tenant_id=tenant.id,
        target=membership,
        target_label=username,
        details={"role": role},
    )
    return membership


@transaction.atomic
def operator_grant(*, actor: Actor, username: str) -> Any:
    """Make an existing account an operator: staff, with the `tenants.operate_cloud`
    permission (tenants.operators). Tenant members cannot be operators (review L7): the
    account leaves its tenants first."""
    user = _active_user(username)
    if Membership.objects.filter(user_id=user.pk).exists():
        raise InvalidRequest(
            "Tenant members cannot be operators: remove the account from its tenants first.",
            code="tenant_member",
        )
    app_label, codename = OPERATOR_PERMISSION.split(".")
    permission = Permission.objects.get(content_type__app_label=app_label, codename=codename)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(permission)
    audit_record(
        actor=actor,
        action="operator.grant",
        target_type="user",
        target_id=str(user.pk),
        details={"username": username},
    )
    return user


@transaction.atomic
def invitation_create(*, actor: Actor, tenant: Tenant, username: str, role: str) -> Invitation:
    """Invite `username` into the tenant with `role`. The answer never depends on whether such
    an account exists (no username oracle, review M9); the membership exists only once the
    account of that name accepts. Inviting again refreshes the pending invitation. 409
    `already_member` for a current member (whom the tenant's members can list anyway)."""
    _lock_tenant(tenant)
    if Membership.objects.filter(tenant=tenant, user__username=username).exists():
        raise ConflictError(
            f"{username} is already a member of this tenant.", code="already_member"
        )
    invitation, _ = Invitation.objects.update_or_create(
        tenant=tenant,
        username=username,
        status=Invitation.Status.PENDING,
        defaults={
            "role": Role(role),
            "invited_by": actor.label,
            "expires_at": timezone.now() + INVITATION_LIFETIME,
        },
    )
    audit_record(
        actor=actor,
        action="membership.invite",
        tenant_id=tenant.id,
        target=invitation,
        target_label=username,
        details={"role": role},
    )
    return invitation


def _pending_for(user: Any, invitation_id: Any) -> Invitation:
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("tenant")
        .filter(
            pk=invitation_id,
            username=user.get_username(),
            status=Invitation.Status.PENDING,
            expires_at__gt=timezone.now(),
        )
        .first()
    )
    if invitation is None:
        raise NotFoundError("No such pending invitation.")
    return invitation


@transaction.atomic
def invitation_accept(*, actor: Actor, user: Any, invitation_id: Any) -> Membership:
    """The invitee accepts: it becomes a member with the invited role. Operator (staff)
    accounts are kept apart from tenants and cannot accept."""
    invitation = _pending_for(user, invitation_id)
    if getattr(user, "is_staff", False):
        raise InvalidRequest("Operator accounts cannot be tenant members.", code="operator_account")
    _lock_tenant(invitation.tenant)
    invitation.status = Invitation.Status.ACCEPTED
    invitation.answered_at = timezone.now()
    invitation.save(update_fields=["status", "answered_at"])
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                user_id=user.pk, tenant=invitation.tenant, role=invitation.role
            )
    except IntegrityError as exc:
        raise ConflictError(
            "You are already a member of this tenant.", code="already_member"
        ) from exc
    audit_record(
        actor=actor,
        action="membership.create",
        tenant_id=invitation.tenant_id,
        target=membership,
        target_label=user.get_username(),
        details={"role": invitation.role, "invitation": str(invitation.pk)},
    )
    return membership


@transaction.atomic
def invitation_decline(*, actor: Actor, user: Any, invitation_id: Any) -> None:
    invitation = _pending_for(user, invitation_id)
    invitation.status = Invitation.Status.DECLINED
    invitation.answered_at = timezone.now()
    invitation.save(update_fields=["status", "answered_at"])
    audit_record(
        actor=actor,
        action="membership.decline",
        tenant_id=invitation.tenant_id,
        target=invitation,
        target_label=user.get_username(),
    )


@transaction.atomic
def membership_set_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    _lock_tenant(membership.tenant)
    membership.refresh_from_db()
    old_role = membership.role
    if old_role == Role.ADMIN and role != Role.ADMIN and _admin_count(membership.tenant) == 1:
        raise ConflictError("A tenant must keep at least one admin.", code="last_admin")
    membership.role = Role(role)
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="membership.update",
        tenant_id=membership.tenant_id,
        target=membership,
        target_label=membership.user.get_username(),
        details={"from": old_role, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:
    """Remove a member; their tokens for this tenant are revoked with it."""
    _lock_tenant(membership.tenant)
    if membership.role == Role.ADMIN and _admin_count(membership.tenant) == 1:
        raise ConflictError("A tenant must keep at least one admin.", code="last_admin")
    username = membership.user.get_username()
    revoked = ApiToken.objects.filter(
        user_id=membership.user_id, tenant_id=membership.tenant_id, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    audit_record(
        actor=actor,
        action="membership.delete",
        tenant_id=membership.tenant_id,
        target=membership,
        target_label=username,
        details={"role": membership.role, "tokens_revoked": revoked},
    )
    membership.delete()


def _check_expiry(expires_at: datetime | None, ceiling: datetime | None) -> datetime:
    now = timezone.now()
    longest = now + settings.TOKEN_MAX_LIFETIME
    if ceiling is not None:
        longest = min(longest, ceiling)
    if expires_at is None:
        # The default lifetime, but never past the creating token's own expiry.
        expires_at = min(now + settings.TOKEN_DEFAULT_LIFETIME, longest)
    if expires_at <= now:
        raise InvalidRequest("expires_at must be in the future.", details={"expires_at": "past"})
    if expires_at > longest:
        raise InvalidRequest(
            f"expires_at may be at most {longest.isoformat()}.",
            code="expiry_too_far",
            details={"max_expires_at": longest.isoformat()},
        )
    return expires_at


def _check_token_count(user: AbstractBaseUser) -> None:
    """At most TOKEN_MAX_PER_USER live (unrevoked, unexpired) tokens per account (review M7),
    decided under a lock of the user's row so that parallel creates cannot pass it."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    live = ApiToken.objects.filter(
        user_id=user.pk, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).count()
    if live >= settings.TOKEN_MAX_PER_USER:
        raise PermissionDeniedError(
            f"An account may hold at most {settings.TOKEN_MAX_PER_USER} live tokens; revoke one "
            "first.",
            code="too_many_tokens",
            details={"limit": settings.TOKEN_MAX_PER_USER},
        )


@transaction.atomic
def token_create(
    *,
    actor: Actor,
    user: AbstractBaseUser,
    name: str,
    tenant: Tenant | None,
    role: str | None = None,
    expires_at: datetime | None = None,
    creating_token: ApiToken | None = None,
    session_passed_mfa: bool | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user` and return it with its secret, which is never shown again.

    A tenant token's role is at most the user's membership role and, when created with
    another token, at most that token's role, and expires no later than it. An operator token
    (tenant None) is only for staff accounts.

    Through the API, the caller is a token (`creating_token`) or a session
    (`session_passed_mfa` says whether it passed a second factor): for an account bound to
    MFA, only a second-factor session or a token made by one may mint tokens (403
    `mfa_required`). Both None means a command run on the control plane itself.
    """
    api_caller = creating_token is not None or session_passed_mfa is not None
    if api_caller and not mfa.may_mint_tokens(
        user, session_passed_mfa=bool(session_passed_mfa), creating_token=creating_token
    ):
        raise PermissionDeniedError(
            "This account is bound to a second factor: create tokens from a session signed in "
            "with it (or with a token created by such a session).",
            code="mfa_required",
        )
    second_factor = (
        creating_token.second_factor if creating_token is not None else bool(session_passed_mfa)
    )
    _check_token_count(user)
    if tenant is None:
        if not is_operator(user):
            raise PermissionDeniedError("Only operator accounts may hold operator tokens.")
        token_role = ""
    else:
        membership = Membership.objects.filter(user_id=user.pk, tenant=tenant).first()
        if membership is None:
            raise PermissionDeniedError("You are not a member of this tenant.")
        ceiling_role = Role(membership.role)
        if creating_token is not None and creating_token.role:
            ceiling_role = Role.lowest(ceiling_role, creating_token.role)
        token_role = Role(role or ceiling_role)
        if Role.rank(token_role) > Role.rank(ceiling_role):
            raise PermissionDeniedError(
                f"A token's role cannot exceed yours ({ceiling_role}).",
                code="role_too_high",
                details={"max_role": str(ceiling_role)},
            )
    ceiling = creating_token.expires_at if creating_token is not None else None
    expires = _check_expiry(expires_at, ceiling)
    parts, secret = tokens.generate()
    token = ApiToken.objects.create(
        user_id=user.pk,
        tenant=tenant,
        name=name,
        role=token_role,
        key_id=parts.key_id,
        secret_hash=tokens.secret_hash(parts),
        expires_at=expires,
        second_factor=second_factor,
    )
    audit_record(
        actor=actor,
        action="token.create",
        tenant_id=tenant.id if tenant else None,
        target=token,
        details={"role": token_role, "expires_at": expires.isoformat(), "key_id": parts.key_id},
    )
    return token, secret


@transaction.atomic
def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    """Revoke a token. Revoking an already revoked token changes nothing."""
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db()
    if updated:
        audit_record(
            actor=actor,
            action="token.revoke",
            tenant_id=token.tenant_id,
            target=token,
            details={"key_id": token.key_id},
        )
    return token


@transaction.atomic
def quota_set(*, actor: Actor, tenant: Tenant, resource: str, limit: int) -> Quota:
    """Set a tenant's limit for a resource (-1 = unlimited). A limit below current usage is
    allowed: it blocks new consumption and takes nothing away."""
    check_resource(resource)
    if limit < -1:
        raise InvalidRequest("A limit is -1 (unlimited) or a number ≥ 0.", details={"limit": limit})
    _lock_tenant(tenant)
    previous = Quota.objects.filter(tenant=tenant, resource=resource).first()
    quota, _ = Quota.objects.update_or_create(
        tenant=tenant, resource=resource, defaults={"limit": limit}
    )
    audit_record(
        actor=actor,
        action="quota.update",
        tenant_id=tenant.id,
        target=quota,
        details={
            "resource": resource,
            "from": previous.limit if previous else None,
            "to": limit,
        },
    )
    return quota
