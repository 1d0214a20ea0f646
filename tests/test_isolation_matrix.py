"""Tenant isolation, roles and authentication, endpoint by endpoint (DESIGN §9, §10).

Every tenant-scoped endpoint and method is called by: the right roles of tenant A, an admin of
tenant B (by token, and by session naming tenant A), anonymous callers and refused tokens.
Each refusal must answer in the one error shape, change no business row, and leave exactly
the audit trace the design promises (a refused event for writes by authenticated callers and
for refused tokens, recorded in the caller's own tenant).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from compute.models import KeyPair
from iaas.audit import Actor
from iaas.models import AuditEvent, IdempotencyRecord
from tenants import services
from tenants.models import ApiToken, Membership, Quota, Role, Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hasher")]

User = get_user_model()
SYSTEM = Actor.system("tests")
WWW_AUTHENTICATE = 'Bearer realm="andromede"'


# ---- The world every test starts from ----------------------------------------------------


@dataclass
class World:
    a: Tenant
    b: Tenant
    callers: dict[str, Any]  # "a_admin", "a_member", "a_reader", "b_admin" -> Caller
    keypair_a: str
    keypair_b: str
    target_member_a: int  # a membership of A that admins may change or remove
    outsider: str  # a user who belongs to no tenant
    spare_tokens: dict[str, str] = field(default_factory=dict)  # caller -> its 2nd token id

    def markers_of_a(self) -> list[str]:
        """Strings that identify tenant A's data; none may reach tenant B's caller."""
        tokens_a = ApiToken.objects.filter(tenant=self.a).values_list("id", flat=True)
        return [str(self.a.id), "alpha", self.keypair_a, *(str(t) for t in tokens_a)]


@pytest.fixture(scope="module")
def api() -> APIClient:
    """One client for the whole module (a new one loads every middleware again, which is
    most of a request's cost here); each call names its credential with `bearer()`."""
    return APIClient()


def bearer(caller: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {caller.token}"}


@pytest.fixture(autouse=True)
def _signed_out(api: APIClient) -> Any:
    yield
    api.cookies.clear()  # a session opened by one test never reaches the next


@pytest.fixture
def world(api, make_tenant, make_caller, ssh_public_keys) -> World:
    a = make_tenant("alpha")
    b = make_tenant("bravo")
    callers = {
        "a_admin": make_caller(a, Role.ADMIN),
        "a_member": make_caller(a, Role.MEMBER),
        "a_reader": make_caller(a, Role.READER),
        "b_admin": make_caller(b, Role.ADMIN),
    }
    target = make_caller(a, Role.MEMBER)
    User.objects.create_user(username="outsider", password="correct horse battery staple")
    services.quota_set(actor=SYSTEM, tenant=a, resource="keypairs", limit=7)
    services.quota_set(actor=SYSTEM, tenant=b, resource="keypairs", limit=9)
    created_a = api.post(
        "/api/v1/keypairs",
        {"name": "alpha-laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="seed-alpha",
        **bearer(callers["a_admin"]),
    )
    created_b = api.post(
        "/api/v1/keypairs",
        {"name": "bravo-laptop", "public_key": ssh_public_keys["ed25519"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="seed-bravo",
        **bearer(callers["b_admin"]),
    )
    assert created_a.status_code == created_b.status_code == 201
    world = World(
        a=a,
        b=b,
        callers=callers,
        keypair_a=created_a.json()["id"],
        keypair_b=created_b.json()["id"],
        target_member_a=Membership.objects.get(user=target.user, tenant=a).pk,
        outsider="outsider",
    )
    for name, caller in callers.items():
        token, _ = services.token_create(
            actor=SYSTEM, user=caller.user, tenant=caller.tenant, name="spare", role=Role.READER
        )
        world.spare_tokens[name] = str(token.pk)
    assert IdempotencyRecord.objects.count() == 2  # the snapshot covers a non-empty table
    return world


# ---- The endpoints -----------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # under /api/v1; placeholders: {keypair}, {token}, {member}
    min_role: str
    action: str = ""  # the audit action of a write
    body: Callable[[World, dict[str, str]], dict[str, Any]] | None = None
    ok_status: int = 200

    @property
    def url(self) -> str:
        return f"/api/v1{self.path}"

    @property
    def is_write(self) -> bool:
        return self.method not in {"GET", "HEAD", "OPTIONS"}

    @property
    def is_detail(self) -> bool:
        return "{" in self.path

    @property
    def is_create(self) -> bool:
        return self.method == "POST"


def _keypair_body(world: World, keys: dict[str, str]) -> dict[str, Any]:
    return {"name": "new-key", "public_key": keys["ecdsa"]}


def _token_body(world: World, keys: dict[str, str]) -> dict[str, Any]:
    return {"name": "new-token", "role": Role.READER}


def _member_body(world: World, keys: dict[str, str]) -> dict[str, Any]:
    return {"username": world.outsider, "role": Role.READER}


def _role_body(world: World, keys: dict[str, str]) -> dict[str, Any]:
    return {"role": Role.READER}


R, M, A = Role.READER, Role.MEMBER, Role.ADMIN
ENDPOINTS = [
    Endpoint("keypairs.list", "GET", "/keypairs", R),
    Endpoint("keypairs.create", "POST", "/keypairs", M, "keypair.create", _keypair_body, 201),
    Endpoint("keypairs.retrieve", "GET", "/keypairs/{keypair}", R),
    Endpoint("keypairs.delete", "DELETE", "/keypairs/{keypair}", M, "keypair.delete", None, 204),
    Endpoint("tokens.list", "GET", "/tokens", R),
    Endpoint("tokens.create", "POST", "/tokens", R, "token.create", _token_body, 201),
    Endpoint("tokens.retrieve", "GET", "/tokens/{token}", R),
    Endpoint("tokens.delete", "DELETE", "/tokens/{token}", R, "token.revoke", None, 204),
    Endpoint("members.list", "GET", "/members", R),
    Endpoint("members.create", "POST", "/members", A, "membership.create", _member_body, 201),
    Endpoint("members.retrieve", "GET", "/members/{member}", R),
    Endpoint("members.patch", "PATCH", "/members/{member}", A, "membership.update", _role_body),
    Endpoint("members.delete", "DELETE", "/members/{member}", A, "membership.delete", None, 204),
    Endpoint("quotas.get", "GET", "/quotas", R),
    Endpoint("tenant.get", "GET", "/tenant", R),
    Endpoint("audit-events.list", "GET", "/audit-events", A),
    Endpoint("audit-events.export", "GET", "/audit-events/export", A),
]
DETAIL_ENDPOINTS = [e for e in ENDPOINTS if e.is_detail]
COLLECTION_READS = [e for e in ENDPOINTS if not e.is_detail and not e.is_write]
CREATES = [e for e in ENDPOINTS if e.is_create]


def _ids(endpoints: list[Endpoint]) -> list[str]:
    return [e.name for e in endpoints]


def call(
    client: APIClient,
    endpoint: Endpoint,
    world: World,
    keys: dict[str, str],
    *,
    token_id: str,
    **extra: Any,
) -> Any:
    path = endpoint.url.format(
        keypair=world.keypair_a, token=token_id, member=world.target_member_a
    )
    body = endpoint.body(world, keys) if endpoint.body else None
    method = getattr(client, endpoint.method.lower())
    if body is None:
        return method(path, **extra)
    return method(path, body, format="json", **extra)


def body_text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


# ---- What every refusal must look like ---------------------------------------------------


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, body_text(response)
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def business_rows() -> dict[str, list[Any]]:
    """Every row of the business tables, for before/after comparison. A token's last use is
    bookkeeping that any authenticated request may refresh, so it is left out."""
    token_fields = [
        f.attname
        for f in ApiToken._meta.concrete_fields
        if f.name not in {"last_used_at", "last_used_address"}
    ]
    return {
        "tenant": list(Tenant.objects.order_by("pk").values()),
        "membership": list(Membership.objects.order_by("pk").values()),
        "apitoken": list(ApiToken.objects.order_by("pk").values(*token_fields)),
        "quota": list(Quota.objects.order_by("pk").values()),
        "keypair": list(KeyPair.objects.order_by("pk").values()),
        "idempotency": list(IdempotencyRecord.objects.order_by("pk").values()),
    }


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def events_since(event_id: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=event_id).order_by("id"))


def assert_refusal_audited(
    since: int, endpoint: Endpoint, caller: Any, tenant_id: Any, code: str
) -> None:
    """Writes by an authenticated caller leave one refused event in the caller's tenant;
    refused reads leave nothing."""
    events = events_since(since)
    if not endpoint.is_write:
        assert events == []
        return
    assert len(events) == 1, [(e.action, e.outcome) for e in events]
    event = events[0]
    assert event.outcome == AuditEvent.Outcome.REFUSED
    assert event.action == endpoint.action
    assert event.tenant_id == tenant_id
    assert event.actor_id == caller.user.pk
    assert event.details["code"] == code


# ---- (a) another tenant's caller -----------------------------------------------------------


@pytest.mark.parametrize("endpoint", DETAIL_ENDPOINTS, ids=_ids(DETAIL_ENDPOINTS))
def test_other_tenants_admin_gets_404_on_our_objects(api, world, ssh_public_keys, endpoint):
    intruder = world.callers["b_admin"]
    before, since = business_rows(), last_event_id()

    response = call(
        api,
        endpoint,
        world,
        ssh_public_keys,
        token_id=world.spare_tokens["a_admin"],
        **bearer(intruder),
    )

    assert_error(response, 404, "not_found")
    assert business_rows() == before
    assert_refusal_audited(since, endpoint, intruder, world.b.id, "not_found")
    assert not AuditEvent.objects.filter(id__gt=since, tenant_id=world.a.id).exists()


@pytest.mark.parametrize("endpoint", COLLECTION_READS, ids=_ids(COLLECTION_READS))
def test_other_tenants_admin_never_sees_our_objects_in_lists(api, world, endpoint):
    intruder = world.callers["b_admin"]
    own_marker = {
        "keypairs.list": world.keypair_b,
        "tokens.list": world.spare_tokens["b_admin"],
        "members.list": intruder.user.username,
        "quotas.get": '"limit":9',
        "tenant.get": str(world.b.id),
        "audit-events.list": str(world.b.id),
        "audit-events.export": str(world.b.id),
    }[endpoint.name]

    response = api.get(endpoint.url, **bearer(intruder))

    assert response.status_code == 200
    text = body_text(response).replace(" ", "")
    assert own_marker in text  # the answer is the caller's own data, not an empty page
    for marker in world.markers_of_a():
        assert marker.lower() not in text.lower(), marker
    assert '"limit":7' not in text  # tenant A's quota


@pytest.mark.parametrize("endpoint", CREATES, ids=_ids(CREATES))
def test_create_naming_another_tenant_still_acts_in_the_tokens_own_tenant(
    api, world, ssh_public_keys, endpoint
):
    """A tenant token names its tenant: an X-Tenant header cannot redirect it elsewhere."""
    intruder = world.callers["b_admin"]
    rows_of_a = {
        "membership": list(Membership.objects.filter(tenant=world.a).values()),
        "keypair": list(KeyPair.objects.filter(tenant=world.a).values()),
        "apitoken": list(ApiToken.objects.filter(tenant=world.a).values("id", "revoked_at")),
    }

    response = call(
        api,
        endpoint,
        world,
        ssh_public_keys,
        token_id="",
        HTTP_X_TENANT=world.a.slug,
        **bearer(intruder),
    )

    assert response.status_code == 201, response.content
    assert rows_of_a == {
        "membership": list(Membership.objects.filter(tenant=world.a).values()),
        "keypair": list(KeyPair.objects.filter(tenant=world.a).values()),
        "apitoken": list(ApiToken.objects.filter(tenant=world.a).values("id", "revoked_at")),
    }
    event = AuditEvent.objects.filter(action=endpoint.action, outcome="success").last()
    assert event is not None
    assert event.tenant_id == world.b.id


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_session_naming_a_tenant_the_user_is_not_in_is_404(api, world, ssh_public_keys, endpoint):
    intruder = world.callers["b_admin"]
    api.force_login(intruder.user)
    before, since = business_rows(), last_event_id()

    response = call(
        api,
        endpoint,
        world,
        ssh_public_keys,
        token_id=world.spare_tokens["a_admin"],
        HTTP_X_TENANT=world.a.slug,
    )

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
    api.force_login(world.callers["b_admin"].user)
    response = api.get("/api/v1/keypairs", HTTP_X_TENANT=world.b.slug)
    assert response.status_code == 200
    assert [k["id"] for k in response.json()["results"]] == [world.keypair_b]


def test_a_members_tokens_are_not_visible_to_another_member_of_the_same_tenant(api, world):
    reader = world.callers["a_reader"]
    listed = api.get("/api/v1/tokens", **bearer(reader)).json()["results"]
    assert {t["id"] for t in listed} == {
        str(t) for t in ApiToken.objects.filter(user=reader.user).values_list("id", flat=True)
    }
    response = api.get(f"/api/v1/tokens/{world.spare_tokens['a_admin']}", **bearer(reader))
    assert_error(response, 404, "not_found")


# ---- (b) roles in the tenant ---------------------------------------------------------------


@pytest.mark.parametrize("role", [R, M, A])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_role_matrix(api, world, ssh_public_keys, endpoint, role):
    name = f"a_{role}"
    caller = world.callers[name]
    allowed = Role.rank(role) >= Role.rank(endpoint.min_role)
    before, since = business_rows(), last_event_id()

    response = call(
        api, endpoint, world, ssh_public_keys, token_id=world.spare_tokens[name], **bearer(caller)
    )

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
    reader = world.callers["a_reader"]
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


# ---- (c) anonymous and refused tokens ------------------------------------------------------

CREDENTIALS = ["anonymous", "malformed", "wrong_secret", "unknown_key", "expired", "revoked"]
EXPECTED_CODE = {
    "anonymous": "not_authenticated",
    "malformed": "invalid_token",
    "wrong_secret": "invalid_token",
    "unknown_key": "invalid_token",
    "expired": "token_expired",
    "revoked": "token_revoked",
}


def _presenting(credential: str, world: World) -> tuple[dict[str, str], ApiToken | None]:
    """Request headers presenting `credential`, and the known token it names (if any).
    Expired and revoked tokens are tenant A's admin's own, made for the occasion."""
    admin = world.callers["a_admin"]
    prefix, key_id, secret = admin.token.split("_", 2)
    if credential == "anonymous":
        return {}, None
    if credential == "malformed":
        return {"HTTP_AUTHORIZATION": "Bearer this-is-not-a-token"}, None
    if credential == "wrong_secret":
        return {"HTTP_AUTHORIZATION": f"Bearer {prefix}_{key_id}_{secret[::-1]}x"}, None
    if credential == "unknown_key":
        return {"HTTP_AUTHORIZATION": f"Bearer {prefix}_{'0' * 12}_{secret}"}, None
    token, full = services.token_create(
        actor=SYSTEM, user=admin.user, tenant=world.a, name=credential, role=Role.ADMIN
    )
    if credential == "expired":
        ApiToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    else:
        services.token_revoke(actor=SYSTEM, token=token)
    return {"HTTP_AUTHORIZATION": f"Bearer {full}"}, token


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_unauthenticated_and_refused_tokens_get_401(api, world, ssh_public_keys, endpoint):
    """Each kind of missing or refused credential in turn (one world per endpoint keeps the
    matrix fast); the assertion messages name the credential."""
    for credential in CREDENTIALS:
        headers, named = _presenting(credential, world)
        before, since = business_rows(), last_event_id()

        response = call(
            api, endpoint, world, ssh_public_keys, token_id=world.spare_tokens["a_admin"], **headers
        )

        try:
            assert_error(response, 401, EXPECTED_CODE[credential])
            assert response["WWW-Authenticate"] == WWW_AUTHENTICATE
            assert business_rows() == before
            assert_token_refusal_audited(since, credential, named, world)
        except AssertionError as exc:
            raise AssertionError(f"with credential {credential!r}: {exc}") from exc


def assert_token_refusal_audited(
    since: int, credential: str, named: ApiToken | None, world: World
) -> None:
    events = events_since(since)
    if credential == "anonymous":
        assert events == []  # anonymous noise is not recorded
        return
    assert len(events) == 1, [(e.action, e.outcome) for e in events]
    [event] = events
    assert event.action == "auth.token"
    assert event.outcome == AuditEvent.Outcome.REFUSED
    assert event.details["code"] == EXPECTED_CODE[credential]
    if named is not None:
        assert event.tenant_id == world.a.id
        assert event.actor_id == world.callers["a_admin"].user.pk
        assert event.credential == f"token:{named.key_id}"
    else:  # nothing proves who sent it: it is attributed to no one
        assert event.tenant_id is None
        assert event.actor_id is None
        assert event.credential == "token:unknown"
