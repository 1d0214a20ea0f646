"""The world the portal's generic tests act in (tests/browser, tests/portal/test_page_isolation.py):
two tenants, `acme` and `other`, each with an admin (TOTP enrolled), a member and a reader,
and one of everything a portal page can name — an active instance and its create operation,
a private active image, a keypair, a network with a subnet and a port, a router with an
interface, a security group with a rule, a floating IP, an available volume with a snapshot
and an export, a pending invitation, an API token and an audit event; the platform they live
on (a zone, a host on libvirt's fake hypervisor, a flavor, an active public image); and an
operator (staff, `tenants.operate_cloud`, TOTP enrolled).

The objects come from tests/support/api_world.py (the API's isolation matrix builds the same
world, through tests/factories.py and the services); this module adds the named users and
the mapping from a URL pattern's kwarg name to a value, per tenant and for the operator's
pages. A page whose pattern names a kwarg missing here fails the generic tests: add it below.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.views import LoginView
from django.test import override_settings
from django.urls import URLPattern, URLResolver
from django.urls.resolvers import RoutePattern
from django_otp.plugins.otp_totp.models import TOTPDevice

from iaas.models import AuditEvent
from operations.models import Operation
from tenants import services as tenant_services
from tenants.models import Membership, Role, Tenant
from tests import factories
from tests.factories import SYSTEM
from tests.support.api_world import World
from tests.support.callers import PASSWORD, caller_maker
from tests.support.mfa import enrol_totp

User = get_user_model()

__all__ = [
    "PASSWORD",
    "MissingKwarg",
    "PortalPattern",
    "PortalWorld",
    "build_portal_world",
    "portal_patterns",
    "portal_world",
    "world_settings",
]

TENANTS = ("acme", "other")
ROLES = (Role.ADMIN, Role.MEMBER, Role.READER)
OPERATOR = "operator"


@dataclass
class PortalWorld:
    objects: World  # what the objects were made by (tests/support/api_world.py)
    users: dict[str, Any]  # by username: acme-admin, acme-member, acme-reader, other-…, operator
    devices: dict[str, TOTPDevice]  # the confirmed TOTP devices, by username
    kwargs: dict[str, dict[str, str]] = field(default_factory=dict)  # "acme", "other", "operator"

    @property
    def acme(self) -> Tenant:
        return self.objects.a

    @property
    def other(self) -> Tenant:
        return self.objects.b

    def user(self, username: str) -> Any:
        return self.users[username]


def _make_user(username: str, *, staff: bool = False) -> Any:
    return User.objects.create_user(username=username, password=PASSWORD, is_staff=staff)


def _tenant_kwargs(world: World, side: str, users: dict[str, Any]) -> dict[str, str]:
    """Every URL kwarg a tenant page may name, for the side's tenant ("a" or "b")."""
    tenant = world.tenant(side)
    slug = tenant.slug
    instance = world.obj("active_instance", side)
    operation = Operation.objects.get(target_id=instance.pk, action="instance.create")
    network, subnet = world.obj("network", side), world.obj("subnet", side)
    volume = world.obj("exportable_volume", side)
    admin = users[f"{slug}-admin"]
    token, _secret = tenant_services.token_create(
        actor=SYSTEM, user=admin, tenant=tenant, name=f"{slug}-ci", role=Role.MEMBER,
        session_passed_mfa=True,
    )  # fmt: skip
    # acme invites someone new; other invites acme's admin, whose account pages then list it.
    invitee = "acme-invitee" if side == "a" else "acme-admin"
    invitation = tenant_services.invitation_create(
        actor=SYSTEM, tenant=tenant, username=invitee, role=Role.READER
    )
    membership = Membership.objects.get(tenant=tenant, user=users[f"{slug}-member"])
    values = {
        "tenant": slug,
        "instance_id": instance.pk,
        "image_id": world.obj("active_image", side).pk,
        "keypair_id": world.obj("keypair", side).pk,
        "network_id": network.pk,
        "subnet_id": subnet.pk,
        "port_id": world.obj("port", side).pk,
        "router_id": world.obj("router_with_interface", side).pk,
        "security_group_id": world.obj("security_group", side).pk,
        "rule_id": world.obj("security_group_rule", side).pk,
        "floating_ip_id": world.obj("floating_ip", side).pk,
        "volume_id": volume.pk,
        "snapshot_id": world.obj("exportable_snapshot", side).pk,
        "export_id": world.obj("export", side).pk,
        "member_id": membership.pk,
        "invitation_id": invitation.pk,
        "token_id": token.pk,
        "operation_id": operation.pk,
        # Made last: the newest event of the tenant (the invitation's).
        "event_id": AuditEvent.objects.filter(tenant_id=tenant.pk).latest("id").pk,
    }
    return {name: str(value) for name, value in values.items()}


def build_portal_world(qcow2: Path, keys: dict[str, str]) -> PortalWorld:
    """The world of the module docstring, made through the services. Needs the database, an
    image store (the `image_store` fixture, or `world_settings`) and the ssh_public_keys."""
    world = World(
        a=factories.tenant("acme"), b=factories.tenant("other"), make_caller=caller_maker(),
        keys=keys, qcow2=qcow2,
    )  # fmt: skip
    users: dict[str, Any] = {}
    for slug, tenant in zip(TENANTS, (world.a, world.b), strict=True):
        for role in ROLES:
            username = f"{slug}-{role.value}"
            users[username] = _make_user(username)
            tenant_services.membership_add(
                actor=SYSTEM, tenant=tenant, username=username, role=role
            )
    users[OPERATOR] = _make_user(OPERATOR, staff=True)
    tenant_services.operator_grant(actor=SYSTEM, username=OPERATOR)
    # Tenant admins and operators must use a second factor (DESIGN §9).
    devices = {name: enrol_totp(users[name]) for name in ("acme-admin", "other-admin", OPERATOR)}
    made = PortalWorld(objects=world, users=users, devices=devices)
    made.kwargs["acme"] = _tenant_kwargs(world, "a", users)
    made.kwargs["other"] = _tenant_kwargs(world, "b", users)
    # The account's own pages (acme-admin's): the invitation is the one addressed to it.
    made.kwargs["account"] = {
        **made.kwargs["acme"],
        "invitation_id": made.kwargs["other"]["invitation_id"],
    }
    platform = world.platform
    made.kwargs[OPERATOR] = {
        **made.kwargs["acme"],
        "host_id": str(platform.host.pk),
        "tenant_id": str(world.a.pk),
        "zone_id": str(platform.zone.pk),
    }
    return made


@contextlib.contextmanager
def world_settings(folder: Path) -> Iterator[None]:
    """For a world made outside a test (a module-scoped fixture, where tests/conftest.py's
    per-test settings do not apply yet): the image store, the audit signing key and the
    volume master key in `folder`, never the checkout's var/."""
    store = folder / "image-store"
    with override_settings(
        IMAGE_STORE_DIR=store,
        AUDIT_SIGNING_KEY=folder / "audit-signing.key",
        AUDIT_SIGNING_KEY_CREATE=True,
        AUDIT_VERIFY_KEY=None,
        AUDIT_CHECKPOINT_FILE=folder / "audit-checkpoints.jsonl",
        VOLUME_MASTER_KEY=None,
        VOLUME_MASTER_KEY_FILE=folder / "volume-master.key",
        VOLUME_MASTER_KEY_CREATE=True,
    ):
        from django.conf import settings

        factories.zone(settings.IMAGE_STORE_ZONE, region="store")
        yield


@pytest.fixture
def portal_world(
    image_store: Path, tiny_qcow2: Path, ssh_public_keys: dict[str, str]
) -> PortalWorld:
    """The world, made for one test (with `live_server`, in a transactional database the
    live server's thread can read)."""
    return build_portal_world(tiny_qcow2, ssh_public_keys)


# ---- The portal's pages, from its URL patterns -------------------------------------------------


class MissingKwarg(AssertionError):
    """A page's pattern names a kwarg the world has no value for."""


_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class PortalPattern:
    """One URL pattern of portal.urls: its full route ("t/<slug:tenant>/instances/"), its
    name and who looks at it: `tenant` pages (under /t/<tenant>/, seen by acme-admin),
    `login` (a sign-in page, Django's LoginView: anonymous), `ops` pages (the operator
    console) and `account` (acme-admin's own pages outside a tenant)."""

    route: str
    name: str
    pattern: Any  # the URLPattern

    @property
    def kwargs(self) -> tuple[str, ...]:
        return tuple(match["name"] for match in _PARAMETER.finditer(self.route))

    @property
    def area(self) -> str:
        if "tenant" in self.kwargs:
            return "tenant"
        view_class = getattr(getattr(self.pattern, "callback", None), "view_class", None)
        if isinstance(view_class, type) and issubclass(view_class, LoginView):
            return "login"
        if self.route.startswith("ops/"):
            return "ops"
        return "account"

    def url(self, values: Mapping[str, str]) -> str:
        """The path with each kwarg filled from `values` (a world's mapping)."""

        def fill(match: re.Match[str]) -> str:
            name = match["name"]
            if name not in values:
                raise MissingKwarg(
                    f"the page {self.route!r} ({self.name}) names the URL kwarg {name!r}, which "
                    f"the portal world does not know: add {name} to tests/support/portal_world.py"
                )
            return str(values[name])

        return "/" + _PARAMETER.sub(fill, self.route)


def portal_patterns(
    patterns: Sequence[URLPattern | URLResolver] | None = None, prefix: str = ""
) -> list[PortalPattern]:
    """Every pattern of portal.urls, includes (the tenant pages under t/<tenant>/) walked
    recursively: the list of pages is the URL map's, not a list kept by hand."""
    if patterns is None:
        from portal import urls

        return portal_patterns(cast(list[URLPattern | URLResolver], urls.urlpatterns))
    found = []
    for pattern in patterns:
        if not isinstance(pattern.pattern, RoutePattern):
            raise AssertionError(f"{pattern!r}: the portal's patterns are path() routes")
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found.extend(portal_patterns(pattern.url_patterns, route))
        else:
            found.append(PortalPattern(route=route, name=pattern.name or "", pattern=pattern))
    return found
