"""Creating and deleting server groups (placement policies over a tenant's instances)."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from compute.models import Instance, ServerGroup
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from tenants.models import Tenant
from tenants.quotas import quota_enforce

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@transaction.atomic
def server_group_create(*, actor: Actor, tenant: Tenant, name: str, policy: str) -> ServerGroup:
    """Create a group under a name unique in the tenant, within the `server_groups` quota."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            "A server group name is 1 to 64 letters, digits, '.', '_' and '-', starting with "
            "a letter or digit.",
            details={"name": name[:80]},
        )
    if policy not in ServerGroup.Policy.values:
        raise InvalidRequest(
            f"A policy is one of {', '.join(ServerGroup.Policy.values)}.", code="invalid_policy"
        )
    quota_enforce(tenant, "server_groups")
    if ServerGroup.objects.filter(tenant=tenant, name=name).exists():
        raise ConflictError(f"A server group named {name!r} exists.", code="already_exists")
    try:
        with transaction.atomic():
            group = ServerGroup.objects.create(tenant=tenant, name=name, policy=policy)
    except IntegrityError as exc:  # lost a race on the name
        raise ConflictError(
            f"A server group named {name!r} exists.", code="already_exists"
        ) from exc
    audit_record(
        actor=actor,
        action="server_group.create",
        tenant_id=tenant.pk,
        target=group,
        details={"policy": policy},
    )
    return group


def live_members(group: ServerGroup) -> int:
    return group.members.exclude(status=Instance.Status.DELETED).count()


@transaction.atomic
def server_group_delete(*, actor: Actor, group: ServerGroup) -> None:
    """Delete a group with no live member (409 `server_group_in_use` otherwise). The row is
    locked first, so a member being placed concurrently is either seen or waits."""
    group = ServerGroup.objects.select_for_update().get(pk=group.pk)
    members = live_members(group)
    if members:
        raise ConflictError(
            f"Server group {group.name} still has {members} instance(s); delete them first.",
            code="server_group_in_use",
            details={"members": members},
        )
    audit_record(
        actor=actor,
        action="server_group.delete",
        tenant_id=group.tenant_id,
        target=group,
        details={"policy": group.policy},
    )
    # Deleted members keep their history; they no longer point at the group.
    Instance.objects.filter(server_group=group).update(server_group=None)
    ServerGroup.objects.filter(pk=group.pk).delete()
