"""Tenant isolation, roles and authentication, route by route (DESIGN §9, §10).

The routes come from the URL map: `api_routes()` walks Django's resolver under /api/v1/ and
lists every route with the HTTP methods its view answers (a DRF router's list, detail and
@action routes with the methods the viewset allows; a plain API view's own handlers).
`test_every_route_and_method_under_api_v1_is_in_the_matrix` fails on any of them that
TENANT_ENDPOINTS, OPERATOR_ENDPOINTS or UNSCOPED does not list, so a new route cannot go
unchecked; another test checks each is listed with the callers its view admits.

Every tenant route and method is called by: the right roles of tenant A, an admin of tenant B
(by token, and by session naming tenant A), an operator's token, anonymous callers and refused
tokens. Every operator route is called by an operator, by each role of tenant A (tokens, and
an admin's session), anonymous callers and refused tokens. Each refusal must answer in the one
error shape, change no business row (tests/support/api_checks.py compares every table of the
project's apps, and the image store), and leave exactly the audit trace the design promises: a
refused event for writes by authenticated callers and for refused tokens, recorded in the
caller's own tenant (none for operators, and none on operator routes, which never resolve a
tenant).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from compute.models import KeyPair
from iaas.models import AuditEvent, IdempotencyRecord
from network.models import Port
from tenants import services
from tenants.models import ApiToken, AuthNoise, Role
from tenants.permissions import IsOperator, TenantRolePermission
from tests import factories
from tests.factories import SYSTEM
from tests.support import api_checks as checks
from tests.support.api_checks import (
    assert_error,
    body_text,
    business_models,
    business_rows,
    events_since,
    last_event_id,
    model_rows,
)
from tests.support.api_world import CALLERS, SEEN_FINGERPRINT, World, build_world
from tests.support.callers import caller_maker
from tests.support.mfa import sign_in_verified

pytestmark = [pytest.mark.django_db]

API_PREFIX = "api/v1/"
WWW_AUTHENTICATE = 'Bearer realm="andromede"'
OCTET_STREAM = "application/octet-stream"


# ---- The routes, from the URL map --------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # under /api/v1, "/" for the root; path parameters as {pk}
    view: Any  # the view class answering it

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path


def _route_text(pattern: Any) -> str:
    """A URL pattern as a path: regex anchors dropped, named groups as {name}."""
    text = str(pattern).removeprefix("^").removesuffix("$")
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", text)


def _methods(callback: Any) -> list[str]:
    """The methods a URL pattern's view answers: a viewset route's mapping (the router keeps
    only the actions the viewset has), or a plain view's handlers. HEAD and OPTIONS are left
    out: every view answers them, as GET or with its description, and they change nothing
    (DRF even adds HEAD to a viewset's mapping once the route has served a GET)."""
    actions = getattr(callback, "actions", None)
    names = (
        list(actions)
        if actions
        else [m for m in callback.cls.http_method_names if hasattr(callback.cls, m)]
    )
    return [name.upper() for name in names if name not in {"head", "options"}]


def api_routes(
    patterns: Sequence[URLPattern | URLResolver] | None = None, prefix: str = ""
) -> Iterator[Route]:
    """Every route and method under /api/v1/ in the URL map (walked as
    iaas.api.views.collection_url_names walks it)."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for pattern in patterns:
        path = prefix + _route_text(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from api_routes(pattern.url_patterns, path)
        elif path.startswith(API_PREFIX):
            view: Any = pattern.callback  # as_view() keeps the class (and a viewset's actions)
            for method in _methods(view):
                yield Route(method, "/" + path.removeprefix(API_PREFIX), view.cls)


# ---- The world every test starts from ----------------------------------------------------


@pytest.fixture(scope="module")
def api() -> APIClient:
    """One client for the whole module (a new one loads every middleware again, which is
    most of a request's cost here); each call names its credential with `bearer()`."""
    return APIClient()


def bearer(caller: Any) -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": f"Bearer {caller.token}"}


@pytest.fixture(autouse=True)
def _signed_out(api: APIClient) -> Any:
    yield
    api.cookies.clear()  # a session opened by one test never reaches the next


@pytest.fixture(scope="module")
def module_world(
    django_db_setup: None, django_db_blocker: Any, api: APIClient, ssh_public_keys, tiny_qcow2
) -> Iterator[World]:
    """Tenants A (alpha) and B (bravo) with their callers and spare tokens
    (tests/support/api_world.py), each with a keypair made through the API with an
    Idempotency-Key and a keypair quota of its own. Made once for the module, in a
    transaction that every test's own (a savepoint) returns to: the world costs nothing per
    test, and what a test makes on top of it is gone with its savepoint."""
    unblocked = django_db_blocker.unblock()
    with unblocked, transaction.atomic():
        world = build_world(factories.tenant, caller_maker(), ssh_public_keys, tiny_qcow2)
        for name in CALLERS:
            world.caller(name)
            if name != "operator":
                world.token_of(name)
        services.quota_set(actor=SYSTEM, tenant=world.a, resource="keypairs", limit=7)
        services.quota_set(actor=SYSTEM, tenant=world.b, resource="keypairs", limit=9)
        for side, tenant in (("a", world.a), ("b", world.b)):
            created = api.post(
                "/api/v1/keypairs",
                {"name": f"{tenant.slug}-laptop", "public_key": ssh_public_keys["ed25519"]},
                format="json",
                HTTP_IDEMPOTENCY_KEY=f"seed-{tenant.slug}",
                **bearer(world.caller(f"{side}_admin")),
            )
            assert created.status_code == 201, created.content
            world.made[("keypair", side)] = KeyPair.objects.get(pk=created.json()["id"])
        assert IdempotencyRecord.objects.count() == 2  # snapshots cover a non-empty table
        yield world
        transaction.set_rollback(True)


@pytest.fixture
def world(module_world: World, db: None, image_store: Any) -> World:
    """The module's world as each test starts from it: what the last test made is gone."""
    return dataclasses.replace(
        module_world,
        made=dict(module_world.made),
        secrets=dict(module_world.secrets),
        callers=dict(module_world.callers),
    )


def markers_of_a(world: World) -> list[str]:
    """Strings that identify tenant A's data; none may reach tenant B's caller."""
    tokens_a = ApiToken.objects.filter(tenant=world.a).values_list("id", flat=True)
    return ["alpha", *world.ids_of_a(), *(str(t) for t in tokens_a)]


# ---- The endpoints -----------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # under /api/v1; {pk}: the `target` object
    min_role: str = Role.READER  # tenant endpoints; "" for operator ones
    action: str = ""  # the audit action of a write
    body: Callable[[World], Any] | None = None
    ok_status: int = 200
    target: str = ""  # the World kind {pk} names ("token": the acting caller's own)
    ready: str = ""  # the kind to act on when the call must succeed (default: target)
    content_type: str = ""  # "": a JSON body
    volume: str = ""  # the World kind {volume_id} names (a route with a second object)

    @property
    def url(self) -> str:
        return f"/api/v1{self.path}"

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def is_write(self) -> bool:
        return self.method not in {"GET", "HEAD", "OPTIONS"}

    @property
    def is_detail(self) -> bool:
        return "{pk}" in self.path

    @property
    def is_create(self) -> bool:
        return self.method == "POST" and not self.is_detail


R, M, A = Role.READER, Role.MEMBER, Role.ADMIN
OP = ""  # operator endpoints: no tenant role

# fmt: off
BODIES: dict[str, Callable[[World], Any]] = {
    "keypair": lambda w: {"name": "new-key", "public_key": w.keys["ecdsa"]},
    "token": lambda w: {"name": "new-token", "role": Role.READER},
    "member": lambda w: {"username": w.outsider, "role": Role.READER},
    "role": lambda w: {"role": Role.READER},
    "image": lambda w: {"name": "new-image", "disk_format": "qcow2"},
    "file": lambda w: w.qcow2.read_bytes(),
    "server_group": lambda w: {"name": "new-group", "policy": "affinity"},
    "instance": lambda w: {"name": "new-vm", "flavor": "small", "image": str(w.platform.image.pk)},
    "rebuild": lambda w: {"image": str(w.platform.image.pk)},
    "resize": lambda w: {"flavor": "big"},
    "snapshot": lambda w: {"name": "snap"},
    "tenant": lambda w: {"name": "Charlie", "slug": "charlie"},
    "quotas": lambda w: {"limits": {"keypairs": 3}},
    "zone": lambda w: {"region": "fr-par", "name": "fr-par-9", "site": "DC9", "city": "Paris",
                       "country": "FR", "jurisdiction": "FR"},
    "host": lambda w: {"name": "h-new", "zone": w.platform.zone.name,
                       "libvirt_uri": "test:///default", "storage_root": "/fake/h-new"},
    "reason": lambda w: {"reason": "RAM errors"},
    "image_store": lambda w: {"name": "new-store", "zone": w.platform.zone.name,
                              "path": str(w.qcow2.parent)},
    "confirm": lambda w: {"fingerprint": SEEN_FINGERPRINT},
    "flavor": lambda w: {"name": "c2-large", "vcpus": 2, "memory_mb": 2048, "disk_gb": 20},
    "rename": lambda w: {"name": "renamed"},
    "network": lambda w: {"name": "new-net"},
    # By name: each tenant resolves it to its own network (both sides have one).
    "subnet": lambda w: (w.obj("network", "a"), w.obj("network", "b"),
                         {"network": "world-net", "cidr": "192.0.2.0/24"})[-1],
    "port": lambda w: (w.obj("network", "a"), w.obj("network", "b"), {"network": "world-net"})[-1],
    "security_group": lambda w: {"name": "new-sg"},
    "security_group_rule": lambda w: (
        w.obj("security_group", "a"), w.obj("security_group", "b"),
        {"security_group": "world-sg", "direction": "ingress", "protocol": "tcp",
         "port_range_min": 22, "port_range_max": 22})[-1],
    "router": lambda w: {"name": "new-router"},
    "add_interface": lambda w: {"subnet": w.pk("spare_subnet", "a")},
    "remove_interface": lambda w: {"subnet": w.pk("subnet", "a")},
    "floating_ip": lambda w: (w.obj("external_network", "x"), {"network": "world-public"})[-1],
    "disassociate": lambda w: {"port": None},
    "attach_interface": lambda w: (w.obj("network", "a"), {"network": "world-net"})[-1],
    "volume": lambda w: (w.obj("public_volume_type", "x"), w.platform,
                         {"name": "new-vol", "size_gb": 1})[-1],
    "extend": lambda w: {"size_gb": 2},
    "volume_snapshot": lambda w: {"volume": w.pk("available_volume", "a"), "name": "new-snap"},
    "volume_type": lambda w: {"name": "new-type", "max_size_gb": 100},
    "attach_volume": lambda w: {"volume": w.pk("available_volume", "a")},
    "detach_interface": lambda w: {"port": str(Port.objects.get(
        device_id=w.obj("active_instance", "a").pk).pk)},
}
# fmt: on


def read(name: str, path: str, role: str = R, target: str = "") -> Endpoint:
    return Endpoint(name, "GET", path, role, target=target)


def write(
    name: str, method: str, path: str, role: str, action: str, ok_status: int = 200, *,
    body: str = "", target: str = "", ready: str = "",
) -> Endpoint:  # fmt: skip
    """A write: `body` names its BODIES entry ("file": the raw bytes of an image upload)."""
    return Endpoint(
        name, method, path, role, action, BODIES[body] if body else None, ok_status, target,
        ready, OCTET_STREAM if body == "file" else "",
    )  # fmt: skip


def verb(name: str, action: str, ready: str, ok_status: int = 202, body: str = "") -> Endpoint:
    """An instance verb: members and admins, on a building instance when refused (its state
    does not matter then), on one in the state the verb needs when it must succeed."""
    return write(
        f"instances.{name}", "POST", f"/instances/{{pk}}/{name}", M, f"instance.{action}",
        ok_status, body=body, target="instance", ready=ready,
    )  # fmt: skip


# fmt: off
TENANT_ENDPOINTS = [
    read("tenant.get", "/tenant"),
    read("quotas.get", "/quotas"),
    read("residency.get", "/residency"),
    read("tokens.list", "/tokens"),
    write("tokens.create", "POST", "/tokens", R, "token.create", 201, body="token"),
    read("tokens.retrieve", "/tokens/{pk}", target="token"),
    write("tokens.delete", "DELETE", "/tokens/{pk}", R, "token.revoke", 204, target="token"),
    read("members.list", "/members"),
    write("members.create", "POST", "/members", A, "membership.invite", 202, body="member"),
    read("members.retrieve", "/members/{pk}", target="member"),
    write("members.patch", "PATCH", "/members/{pk}", A, "membership.update", body="role",
          target="member"),
    write("members.delete", "DELETE", "/members/{pk}", A, "membership.delete", 204,
          target="member"),
    read("audit-events.list", "/audit-events", A),
    read("audit-events.export", "/audit-events/export", A),
    read("operations.list", "/operations"),
    read("operations.retrieve", "/operations/{pk}", target="operation"),
    read("images.list", "/images"),
    write("images.create", "POST", "/images", M, "image.create", 201, body="image"),
    read("images.retrieve", "/images/{pk}", target="image"),
    write("images.delete", "DELETE", "/images/{pk}", M, "image.delete", 204, target="image"),
    write("images.upload", "PUT", "/images/{pk}/file", M, "image.upload", body="file",
          target="image"),
    dataclasses.replace(read("images.download", "/images/{pk}/file", target="image"),
                        ready="active_image"),
    read("keypairs.list", "/keypairs"),
    write("keypairs.create", "POST", "/keypairs", M, "keypair.create", 201, body="keypair"),
    read("keypairs.retrieve", "/keypairs/{pk}", target="keypair"),
    write("keypairs.delete", "DELETE", "/keypairs/{pk}", M, "keypair.delete", 204,
          target="keypair"),
    read("server-groups.list", "/server-groups"),
    write("server-groups.create", "POST", "/server-groups", M, "server_group.create", 201,
          body="server_group"),
    read("server-groups.retrieve", "/server-groups/{pk}", target="server_group"),
    write("server-groups.delete", "DELETE", "/server-groups/{pk}", M, "server_group.delete", 204,
          target="server_group"),
    read("flavors.list", "/flavors"),
    read("flavors.retrieve", "/flavors/{pk}", target="flavor"),
    read("instances.list", "/instances"),
    write("instances.create", "POST", "/instances", M, "instance.create", 202, body="instance"),
    read("instances.retrieve", "/instances/{pk}", target="instance"),
    write("instances.delete", "DELETE", "/instances/{pk}", M, "instance.delete", 202,
          target="instance", ready="active_instance"),
    verb("start", "start", "stopped_instance"),
    verb("stop", "stop", "active_instance"),
    verb("reboot", "reboot", "active_instance"),
    verb("rebuild", "rebuild", "active_instance", body="rebuild"),
    verb("resize", "resize", "active_instance", body="resize"),
    verb("confirm-resize", "confirm_resize", "resized_instance", ok_status=200),
    verb("revert-resize", "revert_resize", "resized_instance"),
    verb("snapshot", "snapshot", "active_instance", body="snapshot"),
    read("instances.console", "/instances/{pk}/console", target="instance"),
    read("instances.operations", "/instances/{pk}/operations", target="instance"),
    read("instances.interfaces", "/instances/{pk}/interfaces", target="instance"),
    write("instances.attach-interface", "POST", "/instances/{pk}/interfaces", M,
          "instance.attach_interface", 202, body="attach_interface", target="instance",
          ready="active_instance"),
    write("instances.detach-interface", "POST", "/instances/{pk}/detach-interface", M,
          "instance.detach_interface", 202, body="detach_interface", target="instance",
          ready="active_instance"),
    read("instances.volumes", "/instances/{pk}/volumes", target="instance"),
    write("instances.attach-volume", "POST", "/instances/{pk}/volumes", M,
          "instance.attach_volume", 202, body="attach_volume", target="instance",
          ready="active_instance"),
    dataclasses.replace(
        write("instances.detach-volume", "DELETE", "/instances/{pk}/volumes/{volume_id}", M,
              "instance.detach_volume", 202, target="instance", ready="active_instance"),
        volume="attached_volume",
    ),
    *(
        endpoint
        for plural, kind, body, verbs in (
            ("networks", "network", "network", "CRUD"),
            ("subnets", "subnet", "subnet", "CRUD"),
            ("ports", "port", "port", "CRUD"),
            ("security-groups", "security_group", "security_group", "CRUD"),
            ("security-group-rules", "security_group_rule", "security_group_rule", "CRD"),
            ("routers", "router", "router", "CRUD"),
            ("floating-ips", "floating_ip", "floating_ip", "CRUD"),
        )
        for endpoint in (
            read(f"{plural}.list", f"/{plural}"),
            write(f"{plural}.create", "POST", f"/{plural}", M, f"{kind}.create", 201, body=body),
            read(f"{plural}.retrieve", f"/{plural}/{{pk}}", target=kind),
            *([write(f"{plural}.patch", "PATCH", f"/{plural}/{{pk}}", M, f"{kind}.update",
                     body="disassociate" if kind == "floating_ip" else "rename", target=kind,
                     ready="associated_floating_ip" if kind == "floating_ip" else "")]
              if "U" in verbs else []),
            write(f"{plural}.delete", "DELETE", f"/{plural}/{{pk}}", M, f"{kind}.delete", 204,
                  target=kind),
        )
    ),
    read("volume-types.list", "/volume-types"),
    read("volume-types.retrieve", "/volume-types/{pk}", target="volume_type"),
    read("volumes.list", "/volumes"),
    write("volumes.create", "POST", "/volumes", M, "volume.create", 202, body="volume"),
    read("volumes.retrieve", "/volumes/{pk}", target="volume"),
    write("volumes.patch", "PATCH", "/volumes/{pk}", M, "volume.update", body="rename",
          target="volume"),
    write("volumes.delete", "DELETE", "/volumes/{pk}", M, "volume.delete", 202,
          target="volume", ready="available_volume"),
    write("volumes.extend", "POST", "/volumes/{pk}/extend", M, "volume.extend", 202,
          body="extend", target="volume", ready="available_volume"),
    read("volumes.operations", "/volumes/{pk}/operations", target="volume"),
    read("volume-snapshots.list", "/volume-snapshots"),
    write("volume-snapshots.create", "POST", "/volume-snapshots", M, "volume_snapshot.create",
          202, body="volume_snapshot"),
    read("volume-snapshots.retrieve", "/volume-snapshots/{pk}", target="volume_snapshot"),
    write("volume-snapshots.patch", "PATCH", "/volume-snapshots/{pk}", M,
          "volume_snapshot.update", body="rename", target="volume_snapshot"),
    write("volume-snapshots.delete", "DELETE", "/volume-snapshots/{pk}", M,
          "volume_snapshot.delete", 202, target="volume_snapshot"),
    read("volume-snapshots.operations", "/volume-snapshots/{pk}/operations",
         target="volume_snapshot"),
    write("volume-snapshots.export", "POST", "/volume-snapshots/{pk}/export", M,
          "volume_snapshot.export", 202, target="volume_snapshot", ready="exportable_snapshot"),
    write("volumes.export", "POST", "/volumes/{pk}/export", M, "volume.export", 202,
          target="volume", ready="exportable_volume"),
    read("exports.list", "/exports"),
    read("exports.retrieve", "/exports/{pk}", target="export"),
    read("exports.file", "/exports/{pk}/file", target="export"),
    write("exports.delete", "DELETE", "/exports/{pk}", M, "export.delete", 200, target="export"),
    write("routers.add-interface", "POST", "/routers/{pk}/add-interface", M,
          "router.add_interface", body="add_interface", target="router"),
    write("routers.remove-interface", "POST", "/routers/{pk}/remove-interface", M,
          "router.remove_interface", body="remove_interface", target="router",
          ready="router_with_interface"),
]

OPERATOR_ENDPOINTS = [
    read("admin-tenants.list", "/admin/tenants", OP),
    write("admin-tenants.create", "POST", "/admin/tenants", OP, "tenant.create", 201,
          body="tenant"),
    read("admin-tenants.retrieve", "/admin/tenants/{pk}", OP, target="tenant"),
    read("admin-tenants.quotas", "/admin/tenants/{pk}/quotas", OP, target="tenant"),
    write("admin-tenants.set-quotas", "PUT", "/admin/tenants/{pk}/quotas", OP, "tenant.quotas",
          body="quotas", target="tenant"),
    read("admin-audit-events.list", "/admin/audit-events", OP),
    read("admin-audit-events.export", "/admin/audit-events/export", OP),
    read("admin-zones.list", "/admin/zones", OP),
    write("admin-zones.create", "POST", "/admin/zones", OP, "zone.create", 201, body="zone"),
    read("admin-zones.retrieve", "/admin/zones/{pk}", OP, target="zone"),
    read("admin-hosts.list", "/admin/hosts", OP),
    write("admin-hosts.create", "POST", "/admin/hosts", OP, "host.create", 202, body="host"),
    write("admin-hosts.confirm", "POST", "/admin/hosts/{pk}/confirm", OP, "host.confirm",
          202, body="confirm", target="host", ready="awaiting_host"),
    write("admin-hosts.retry", "POST", "/admin/hosts/{pk}/retry", OP, "host.retry",
          202, target="host", ready="failed_host"),
    write("admin-hosts.delete", "DELETE", "/admin/hosts/{pk}", OP, "host.delete", 204,
          target="host", ready="failed_host"),
    read("admin-hosts.retrieve", "/admin/hosts/{pk}", OP, target="host"),
    write("admin-hosts.disable", "POST", "/admin/hosts/{pk}/disable", OP, "host.disable",
          body="reason", target="host"),
    write("admin-hosts.enable", "POST", "/admin/hosts/{pk}/enable", OP, "host.enable",
          target="host", ready="disabled_host"),
    write("admin-hosts.maintenance", "POST", "/admin/hosts/{pk}/maintenance", OP,
          "host.maintenance", target="host"),
    write("admin-hosts.drain", "POST", "/admin/hosts/{pk}/drain", OP, "host.drain", 202,
          target="host"),
    read("admin-images.list", "/admin/images", OP),
    write("admin-images.create", "POST", "/admin/images", OP, "image.create", 201, body="image"),
    read("admin-images.retrieve", "/admin/images/{pk}", OP, target="image"),
    write("admin-images.delete", "DELETE", "/admin/images/{pk}", OP, "image.delete", 204,
          target="image"),
    write("admin-images.upload", "PUT", "/admin/images/{pk}/file", OP, "image.upload",
          body="file", target="image"),
    read("admin-image-stores.list", "/admin/image-stores", OP),
    write("admin-image-stores.create", "POST", "/admin/image-stores", OP, "image_store.create",
          201, body="image_store"),
    read("admin-image-stores.retrieve", "/admin/image-stores/{pk}", OP, target="image_store"),
    read("admin-flavors.list", "/admin/flavors", OP),
    write("admin-flavors.create", "POST", "/admin/flavors", OP, "flavor.create", 201,
          body="flavor"),
    read("admin-volume-types.list", "/admin/volume-types", OP),
    write("admin-volume-types.create", "POST", "/admin/volume-types", OP, "volume_type.create",
          201, body="volume_type"),
]
# fmt: on

#: Routes in no tenant and for no operator in particular, and why the matrix leaves them out.
UNSCOPED = {
    ("GET", "/"): "the API root: links anyone may read (tests/iaas/test_api_root.py)",
    ("GET", "/me"): "the caller's own account and memberships, in no tenant",
    ("POST", "/auth/login"): "sign-in (tests/tenants/test_signin_lockout.py)",
    ("POST", "/auth/logout"): "ends the caller's own session",
    (
        "GET",
        "/invitations",
    ): "invitations to the caller's username (tests/tenants/test_invitations.py)",
    ("POST", "/invitations/{pk}/accept"): "the caller's own invitation (test_invitations.py)",
    ("POST", "/invitations/{pk}/decline"): "the caller's own invitation (test_invitations.py)",
    ("POST", "/admin/auth/login"): "operator sign-in (tests/tenants/test_signin_lockout.py)",
    ("GET", "/auth/mfa"): "the session's own second factor (tests/tenants/test_mfa.py)",
    ("DELETE", "/auth/mfa"): "the session's own second factor (tests/tenants/test_mfa.py)",
    ("POST", "/auth/mfa/totp"): "the session's own enrolment (tests/tenants/test_mfa.py)",
    ("POST", "/auth/mfa/totp/confirm"): "the session's own enrolment (tests/tenants/test_mfa.py)",
    ("POST", "/auth/mfa/recovery-codes"): "the session's own codes (tests/tenants/test_mfa.py)",
}
# Operator routes about accounts (not tenant resources): they admit operators only, and their
# refusals (tenant tokens and sessions, anonymous) are proven in the test named.
OPERATOR_ACCOUNT_ROUTES = {
    ("POST", "/admin/users/<int:user_id>/mfa-reset"): "tests/tenants/test_mfa.py",
}

DETAIL_ENDPOINTS = [e for e in TENANT_ENDPOINTS if e.is_detail]
COLLECTION_READS = [e for e in TENANT_ENDPOINTS if not e.is_detail and not e.is_write]
CREATES = [e for e in TENANT_ENDPOINTS if e.is_create]
EVERY_ENDPOINT = TENANT_ENDPOINTS + OPERATOR_ENDPOINTS


def _ids(endpoints: list[Endpoint]) -> list[str]:
    return [e.name for e in endpoints]


@dataclass(frozen=True)
class Prepared:
    """A request ready to send: its objects made and its body built, so that the before
    snapshot is taken after them."""

    method: str
    path: str
    body: Any
    content_type: str

    def send(self, client: APIClient, **extra: Any) -> Any:
        method = getattr(client, self.method.lower())
        if self.body is None:
            return method(self.path, **extra)
        if self.content_type:
            return method(self.path, data=self.body, content_type=self.content_type, **extra)
        return method(self.path, self.body, format="json", **extra)


def prepare(
    endpoint: Endpoint, world: World, *, caller: str = "a_admin", ready: bool = False
) -> Prepared:
    """The request on tenant A's object (as `caller` sees it: a token is the caller's own),
    in the state the call needs to succeed when `ready`."""
    pk = ""
    if endpoint.target:
        kind = (endpoint.ready or endpoint.target) if ready else endpoint.target
        pk = str(world.token_of(caller).pk) if kind == "token" else world.pk(kind, "a")
    body = endpoint.body(world) if endpoint.body else None
    second = {"volume_id": world.pk(endpoint.volume, "a")} if endpoint.volume else {}
    url = endpoint.url.format(pk=pk, **second)
    return Prepared(endpoint.method, url, body, endpoint.content_type)


# ---- What every refusal must look like ---------------------------------------------------


def assert_refusal_audited(
    since: int, endpoint: Endpoint, caller: Any, tenant_id: Any, code: str
) -> None:
    """Writes by an authenticated caller leave one refused event in the caller's tenant;
    refused reads leave nothing."""
    checks.assert_refusal_audited(
        since, write=endpoint.is_write, action=endpoint.action, actor_id=caller.user.pk,
        tenant_id=tenant_id, code=code,
    )  # fmt: skip


def rows_of(tenant: Any) -> dict[str, list[Any]]:
    """Every business row that belongs to `tenant`."""
    return {
        model._meta.label_lower: model_rows(model, tenant=tenant)
        for model in business_models()
        if any(field.name == "tenant" for field in model._meta.concrete_fields)
    }


# ---- The matrix covers the URL map ---------------------------------------------------------


def test_every_route_and_method_under_api_v1_is_in_the_matrix():
    routes = {route.key for route in api_routes()}
    listed = {e.key for e in EVERY_ENDPOINT} | set(UNSCOPED) | set(OPERATOR_ACCOUNT_ROUTES)
    missing = sorted(routes - listed)
    assert not missing, (
        "These routes have no isolation cases; add them to TENANT_ENDPOINTS, "
        "OPERATOR_ENDPOINTS or UNSCOPED in tests/test_isolation_matrix.py: "
        + ", ".join(f"{method} /api/v1{path}" for method, path in missing)
    )
    gone = sorted(listed - routes)
    assert not gone, f"These matrix entries name no route: {gone}"
    assert len({e.key for e in EVERY_ENDPOINT}) == len(EVERY_ENDPOINT), "listed twice"


def test_each_route_is_listed_with_the_callers_its_view_admits():
    views = {route.key: route.view for route in api_routes()}
    for endpoints, permission in ((TENANT_ENDPOINTS, TenantRolePermission),
                                  (OPERATOR_ENDPOINTS, IsOperator)):  # fmt: skip
        for endpoint in endpoints:
            admits = views[endpoint.key].permission_classes
            assert permission in admits, (endpoint.name, admits)
    for key in UNSCOPED:
        admits = views[key].permission_classes
        assert TenantRolePermission not in admits, key
        assert IsOperator not in admits, key
    for key in OPERATOR_ACCOUNT_ROUTES:
        assert IsOperator in views[key].permission_classes, key


# ---- (a) another tenant's caller -----------------------------------------------------------


@pytest.mark.parametrize("endpoint", DETAIL_ENDPOINTS, ids=_ids(DETAIL_ENDPOINTS))
def test_other_tenants_admin_gets_404_on_our_objects(api, world, endpoint):
    intruder = world.caller("b_admin")
    request = prepare(endpoint, world)
    before, since = business_rows(), last_event_id()

    response = request.send(api, **bearer(intruder))

    assert_error(response, 404, "not_found")
    assert business_rows() == before
    assert_refusal_audited(since, endpoint, intruder, world.b.id, "not_found")
    assert not AuditEvent.objects.filter(id__gt=since, tenant_id=world.a.id).exists()


#: What tenant B's caller must find of its own in each collection (so that an empty answer
#: cannot pass), and what of tenant A's each collection is made to hold.
OWN_MARKERS: dict[str, Callable[[World], str]] = {
    "tenant.get": lambda w: str(w.b.id),
    "quotas.get": lambda w: '"limit":9',
    "tokens.list": lambda w: str(w.token_of("b_admin").pk),
    "members.list": lambda w: w.caller("b_admin").user.username,
    "audit-events.list": lambda w: str(w.b.id),
    "audit-events.export": lambda w: str(w.b.id),
    "operations.list": lambda w: w.pk("operation", "b"),
    "images.list": lambda w: w.pk("image", "b"),
    "keypairs.list": lambda w: w.pk("keypair", "b"),
    "server-groups.list": lambda w: w.pk("server_group", "b"),
    "flavors.list": lambda w: w.pk("flavor", "b"),
    "instances.list": lambda w: w.pk("instance", "b"),
    "residency.get": lambda w: w.pk("instance", "b"),
    "networks.list": lambda w: w.pk("network", "b"),
    "subnets.list": lambda w: w.pk("subnet", "b"),
    "ports.list": lambda w: w.pk("port", "b"),
    "security-groups.list": lambda w: w.pk("security_group", "b"),
    "security-group-rules.list": lambda w: w.pk("security_group_rule", "b"),
    "routers.list": lambda w: w.pk("router", "b"),
    "floating-ips.list": lambda w: w.pk("floating_ip", "b"),
    "volume-types.list": lambda w: w.pk("volume_type", "b"),
    "volumes.list": lambda w: w.pk("volume", "b"),
    "volume-snapshots.list": lambda w: w.pk("volume_snapshot", "b"),
    "exports.list": lambda w: w.pk("export", "b"),
}
HELD_BY_A: dict[str, Callable[[World], Any]] = {
    "tokens.list": lambda w: w.token_of("a_admin"),
    "members.list": lambda w: w.obj("member", "a"),
    "operations.list": lambda w: w.obj("operation", "a"),
    "images.list": lambda w: w.obj("image", "a"),
    "server-groups.list": lambda w: w.obj("server_group", "a"),
    "flavors.list": lambda w: w.obj("flavor", "a"),
    "instances.list": lambda w: w.obj("instance", "a"),
    "residency.get": lambda w: (
        w.obj("instance", "a"),
        w.obj("image", "a"),
        w.obj("volume", "a"),
        w.obj("export", "a"),
    ),
    "networks.list": lambda w: w.obj("network", "a"),
    "subnets.list": lambda w: w.obj("subnet", "a"),
    "ports.list": lambda w: w.obj("port", "a"),
    "security-groups.list": lambda w: w.obj("security_group", "a"),
    "security-group-rules.list": lambda w: w.obj("security_group_rule", "a"),
    "routers.list": lambda w: w.obj("router_with_interface", "a"),
    "floating-ips.list": lambda w: w.obj("floating_ip", "a"),
    "volume-types.list": lambda w: w.obj("volume_type", "a"),
    "volumes.list": lambda w: w.obj("volume", "a"),
    "volume-snapshots.list": lambda w: w.obj("volume_snapshot", "a"),
    "exports.list": lambda w: w.obj("export", "a"),
}


@pytest.mark.parametrize("endpoint", COLLECTION_READS, ids=_ids(COLLECTION_READS))
def test_other_tenants_admin_never_sees_our_objects_in_lists(api, world, endpoint):
    intruder = world.caller("b_admin")
    if endpoint.name in HELD_BY_A:
        HELD_BY_A[endpoint.name](world)
    own_marker = OWN_MARKERS[endpoint.name](world)

    response = api.get(endpoint.url, **bearer(intruder))

    assert response.status_code == 200
    text = body_text(response).replace(" ", "")
    assert own_marker in text  # the answer is the caller's own data, not an empty page
    for marker in markers_of_a(world):
        assert marker.lower() not in text.lower(), marker
    assert '"limit":7' not in text  # tenant A's quota


#: Creates whose body names one of tenant A's objects by id (no name is shared by both
#: tenants' objects): the error code B's caller gets.
NAMES_A_BY_ID = {"volume-snapshots.create": "unknown_volume"}


@pytest.mark.parametrize("endpoint", CREATES, ids=_ids(CREATES))
def test_create_naming_another_tenant_still_acts_in_the_tokens_own_tenant(api, world, endpoint):
    """A tenant token names its tenant: an X-Tenant header cannot redirect it elsewhere."""
    intruder = world.caller("b_admin")
    request = prepare(endpoint, world)
    rows_of_a = rows_of(world.a)

    response = request.send(api, HTTP_X_TENANT=world.a.slug, **bearer(intruder))

    if endpoint.name in NAMES_A_BY_ID:
        # The body names tenant A's object by id: looked up in B's tenant, it is not found.
        assert_error(response, 400, NAMES_A_BY_ID[endpoint.name])
        assert rows_of(world.a) == rows_of_a
        event = AuditEvent.objects.filter(action=endpoint.action, outcome="refused").last()
        assert event is not None
        assert event.tenant_id == world.b.id
        return
    assert response.status_code == endpoint.ok_status, response.content
    assert rows_of(world.a) == rows_of_a
    event = AuditEvent.objects.filter(action=endpoint.action, outcome="success").last()
    assert event is not None
    assert event.tenant_id == world.b.id


@pytest.mark.parametrize("endpoint", TENANT_ENDPOINTS, ids=_ids(TENANT_ENDPOINTS))
def test_session_naming_a_tenant_the_user_is_not_in_is_404(api, world, endpoint):
    intruder = world.caller("b_admin")
    request = prepare(endpoint, world)
    sign_in_verified(api, intruder.user)
    before, since = business_rows(), last_event_id()

    response = request.send(api, HTTP_X_TENANT=world.a.slug)

    assert_error(response, 404, "tenant_not_found")
    assert business_rows() == before
    events = events_since(since)
    assert len(events) == (1 if endpoint.is_write else 0)
    for event in events:
        assert event.outcome == AuditEvent.Outcome.REFUSED
        assert event.action == endpoint.action
        assert event.actor_id == intruder.user.pk
        assert event.tenant_id != world.a.id


def test_session_naming_its_own_tenant_works(api, world):
    sign_in_verified(api, world.caller("b_admin").user)
    response = api.get("/api/v1/keypairs", HTTP_X_TENANT=world.b.slug)
    assert response.status_code == 200
    assert [k["id"] for k in response.json()["results"]] == [world.pk("keypair", "b")]


def test_a_members_tokens_are_not_visible_to_another_member_of_the_same_tenant(api, world):
    reader = world.caller("a_reader")
    admins = str(world.token_of("a_admin").pk)
    listed = api.get("/api/v1/tokens", **bearer(reader)).json()["results"]
    assert {t["id"] for t in listed} == {
        str(t) for t in ApiToken.objects.filter(user=reader.user).values_list("id", flat=True)
    }
    assert admins not in {t["id"] for t in listed}
    response = api.get(f"/api/v1/tokens/{admins}", **bearer(reader))
    assert_error(response, 404, "not_found")


# ---- (b) roles in the tenant, and operators in a tenant ---------------------------------------


@pytest.mark.parametrize("role", [R, M, A])
@pytest.mark.parametrize("endpoint", TENANT_ENDPOINTS, ids=_ids(TENANT_ENDPOINTS))
def test_role_matrix(api, world, endpoint, role):
    name = f"a_{role}"
    caller = world.caller(name)
    allowed = Role.rank(role) >= Role.rank(endpoint.min_role)
    request = prepare(endpoint, world, caller=name, ready=allowed)
    before, since = business_rows(), last_event_id()

    response = request.send(api, **bearer(caller))

    if allowed:
        assert response.status_code == endpoint.ok_status, body_text(response)
        if endpoint.is_write:
            assert business_rows() != before
    else:
        error = assert_error(response, 403, "permission_denied")
        assert error["details"] == {"required_role": endpoint.min_role, "your_role": role}
        assert business_rows() == before
        assert_refusal_audited(since, endpoint, caller, world.a.id, "permission_denied")


def test_reader_may_create_its_own_reader_token_but_not_a_member_token(api, world):
    reader = world.caller("a_reader")
    before, since = business_rows(), last_event_id()

    refused = api.post(
        "/api/v1/tokens", {"name": "ci", "role": Role.MEMBER}, format="json", **bearer(reader)
    )

    error = assert_error(refused, 403, "role_too_high")
    assert error["details"] == {"max_role": Role.READER}
    assert business_rows() == before
    [event] = events_since(since)
    assert (event.action, event.outcome, event.tenant_id, event.actor_id) == (
        "token.create",
        "refused",
        world.a.id,
        reader.user.pk,
    )

    created = api.post(
        "/api/v1/tokens", {"name": "ci", "role": Role.READER}, format="json", **bearer(reader)
    )
    assert created.status_code == 201, created.content
    assert created.json()["role"] == Role.READER
    assert ApiToken.objects.get(pk=created.json()["id"]).user == reader.user


@pytest.mark.parametrize("endpoint", TENANT_ENDPOINTS, ids=_ids(TENANT_ENDPOINTS))
def test_an_operator_token_is_refused_on_tenant_routes(api, world, endpoint):
    """Operators have no tenant: their tokens act only on /admin routes."""
    operator = world.caller("operator")
    request = prepare(endpoint, world)
    before, since = business_rows(), last_event_id()

    response = request.send(api, **bearer(operator))

    assert_error(response, 403, "operator_token")
    assert business_rows() == before
    assert_refusal_audited(since, endpoint, operator, None, "operator_token")


# ---- (c) operator routes -------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", OPERATOR_ENDPOINTS, ids=_ids(OPERATOR_ENDPOINTS))
def test_operators_reach_operator_routes(api, world, endpoint):
    operator = world.caller("operator")
    request = prepare(endpoint, world, ready=True)
    before = business_rows()

    response = request.send(api, **bearer(operator))

    assert response.status_code == endpoint.ok_status, body_text(response)
    if endpoint.is_write:
        assert business_rows() != before


@pytest.mark.parametrize("endpoint", OPERATOR_ENDPOINTS, ids=_ids(OPERATOR_ENDPOINTS))
def test_tenant_callers_are_refused_on_operator_routes(api, world, endpoint):
    """Every role of a tenant, by token, and a tenant admin by session: 403, nothing changed,
    a refused write recorded against the caller, in the tenant its token names (a session on
    an operator route acts in no tenant)."""
    request = prepare(endpoint, world)
    for name in ("a_reader", "a_member", "a_admin", "a_admin session"):
        caller = world.caller(name.split()[0])
        if name.endswith("session"):
            sign_in_verified(api, caller.user)
        credentials = {} if name.endswith("session") else bearer(caller)
        before, since = business_rows(), last_event_id()

        response = request.send(api, **credentials)

        try:
            assert_error(response, 403, "permission_denied")
            assert business_rows() == before
            tenant = None if name.endswith("session") else world.a.id
            assert_refusal_audited(since, endpoint, caller, tenant, "permission_denied")
        except AssertionError as exc:
            raise AssertionError(f"as {name}: {exc}") from exc


# ---- (d) anonymous and refused tokens ------------------------------------------------------

CREDENTIALS = ["anonymous", "malformed", "wrong_secret", "unknown_key", "expired", "revoked"]
EXPECTED_CODE = {
    "anonymous": "not_authenticated",
    "malformed": "invalid_token",
    "wrong_secret": "invalid_token",
    "unknown_key": "invalid_token",
    "expired": "token_expired",
    "revoked": "token_revoked",
}


def _presenting(
    credential: str, world: World, owner: str
) -> tuple[dict[str, str], ApiToken | None]:
    """Request headers presenting `credential`, and the known token it names (if any).
    Expired and revoked tokens are `owner`'s own, made for the occasion."""
    who = world.caller(owner)
    prefix, key_id, secret = who.token.split("_", 2)
    if credential == "anonymous":
        return {}, None
    if credential == "malformed":
        return {"HTTP_AUTHORIZATION": "Bearer this-is-not-a-token"}, None
    if credential == "wrong_secret":
        return {"HTTP_AUTHORIZATION": f"Bearer {prefix}_{key_id}_{secret[::-1]}x"}, None
    if credential == "unknown_key":
        return {"HTTP_AUTHORIZATION": f"Bearer {prefix}_{'0' * 12}_{secret}"}, None
    token, full = services.token_create(
        actor=SYSTEM, user=who.user, tenant=who.tenant, name=credential,
        role=Role.ADMIN if who.tenant is not None else None,
    )  # fmt: skip
    if credential == "expired":
        # The ORM: a token that has expired (no service back-dates an expiry).
        ApiToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    else:
        services.token_revoke(actor=SYSTEM, token=token)
    return {"HTTP_AUTHORIZATION": f"Bearer {full}"}, token


@pytest.mark.parametrize("endpoint", EVERY_ENDPOINT, ids=_ids(EVERY_ENDPOINT))
def test_unauthenticated_and_refused_tokens_get_401(api, world, endpoint):
    """Each kind of missing or refused credential in turn (one world per endpoint keeps the
    matrix fast); the assertion messages name the credential. The refused tokens are tenant
    A's admin's on tenant routes, the operator's on operator routes."""
    owner = "operator" if endpoint in OPERATOR_ENDPOINTS else "a_admin"
    request = prepare(endpoint, world)
    for credential in CREDENTIALS:
        headers, named = _presenting(credential, world, owner)
        before, since = business_rows(), last_event_id()

        response = request.send(api, **headers)

        try:
            assert_error(response, 401, EXPECTED_CODE[credential])
            assert response["WWW-Authenticate"] == WWW_AUTHENTICATE
            assert business_rows() == before
            assert_token_refusal_audited(since, credential, named, world.caller(owner))
        except AssertionError as exc:
            raise AssertionError(f"with credential {credential!r}: {exc}") from exc


def assert_token_refusal_audited(
    since: int, credential: str, named: ApiToken | None, owner: Any
) -> None:
    events = events_since(since)
    if credential == "anonymous":
        assert events == []  # anonymous noise is not recorded
        return
    if named is None:
        # Nothing proves who sent it: anonymous noise, counted and summarised once a minute
        # instead of audited one by one (M1, tests/tenants/test_auth_noise.py).
        assert events == []
        assert AuthNoise.objects.filter(kind=AuthNoise.Kind.UNKNOWN_TOKEN).exists()
        return
    assert len(events) == 1, [(e.action, e.outcome) for e in events]
    [event] = events
    assert event.action == "auth.token"
    assert event.outcome == AuditEvent.Outcome.REFUSED
    assert event.details["code"] == EXPECTED_CODE[credential]
    assert event.tenant_id == (owner.tenant.pk if owner.tenant is not None else None)
    assert event.actor_id == owner.user.pk
    assert event.credential == f"token:{named.key_id}"
