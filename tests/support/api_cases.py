"""Generic API test cases, composed per resource in the manner of NetBox's APIViewTestCases
(utilities/testing/api.py): a resource's test class inherits the cases that apply to it and
declares only what differs — its URL, its model, which object of the world it acts on, a
create body, the roles it needs, what a create or a delete answers.

    class TestKeyPairs(TenantListCases, TenantDetailCases, TenantCreateCases, TenantDeleteCases):
        url = "/api/v1/keypairs"
        model = KeyPair
        kind = "keypair"            # what World.obj() makes for it
        audit_resource = "keypair"

        def create_body(self, world): return {"name": "new-key", "public_key": world.keys["ecdsa"]}

Tenant resources get: each role's list (its own tenant's objects only), the detail as the list
shows it, each role's create and delete (allowed: the answer, the row in the caller's tenant,
the audit event; refused: 403, nothing changed, one refused event), another tenant's object
(every method on it is a 404 that changes nothing and leaves its trace in the intruder's
tenant only), and operator tokens refused. Operator resources get: operators list, read,
create, act and delete; every tenant role is refused and changes nothing. Every case runs in
a World (tests/support/api_world.py) made fresh for the test, and checks refusals with
tests/support/api_checks.py, as the isolation matrix does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from django.db.models import Model
from rest_framework.test import APIClient

from iaas.models import AuditEvent
from tenants.models import Role
from tests.support.api_checks import (
    assert_error,
    assert_refusal_audited,
    body_text,
    business_rows,
    last_event_id,
)
from tests.support.api_world import World, build_world
from tests.support.callers import Caller

R, M, A = Role.READER, Role.MEMBER, Role.ADMIN
ROLES = (R, M, A)
TENANT_CALLERS = ("a_reader", "a_member", "a_admin")


@dataclass(frozen=True)
class Call:
    """One request on one object: a method, the path after `{url}/{id}`, a body."""

    method: str
    suffix: str = ""  # "" for the object itself, "start" for `{url}/{id}/start`
    body: Callable[[World], Any] | None = None
    content_type: str = ""  # "": a JSON body
    verb: str = ""  # the audit verb of a write: `{audit_resource}.{verb}`
    ok_status: int = 200  # when an allowed caller makes it (operator cases)

    @property
    def write(self) -> bool:
        return self.method not in {"GET", "HEAD", "OPTIONS"}

    def send(self, api: APIClient, url: str, world: World, caller: Caller | None) -> Any:
        path = f"{url}/{self.suffix}" if self.suffix else url
        headers = caller.bearer() if caller is not None else {}
        method = getattr(api, self.method.lower())
        body = self.body(world) if self.body is not None else None
        if body is None:
            return method(path, **headers)
        if self.content_type:
            return method(path, data=body, content_type=self.content_type, **headers)
        return method(path, body, format="json", **headers)

    def __str__(self) -> str:
        return f"{self.method} …/{{id}}{'/' + self.suffix if self.suffix else ''}"


GET = Call("GET")


def _allowed(role: str, required: str) -> bool:
    return Role.rank(role) >= Role.rank(required)


def _ids(response: Any) -> list[str]:
    return [str(item["id"]) for item in response.json()["results"]]


class ApiCase:
    """What every case class needs; a resource's class sets the ClassVars and `create_body`."""

    url: ClassVar[str]  # the collection, e.g. "/api/v1/keypairs"
    model: ClassVar[type[Model]]
    kind: ClassVar[str]  # the World kind of one object of the resource
    audit_resource: ClassVar[str] = ""
    #: Requests on one object beyond GET and DELETE (the viewset's detail @actions).
    detail_calls: ClassVar[tuple[Call, ...]] = ()
    unknown_pk: ClassVar[str] = "00000000-0000-4000-8000-000000000000"

    @pytest.fixture(scope="class")
    @classmethod
    def api(cls) -> APIClient:
        """One client per class: each request names its caller (a new client loads every
        middleware again)."""
        return APIClient()

    @pytest.fixture
    def world(
        self,
        db: None,
        make_tenant: Any,
        make_caller: Any,
        ssh_public_keys: dict[str, str],
        image_store: Any,
        tiny_qcow2: Any,
    ) -> World:
        return build_world(make_tenant, make_caller, ssh_public_keys, tiny_qcow2)

    def make(self, world: World, side: str = "a", caller: str = "") -> str:
        """The id of an object of the resource belonging to `side`, which `caller` (the one
        about to use it) may see; most resources ignore `caller`."""
        return world.pk(self.kind, side)

    def detail_url(self, pk: str) -> str:
        return f"{self.url}/{pk}"

    def create_body(self, world: World) -> Any:
        raise NotImplementedError

    def calls_on_one(self) -> list[Call]:
        """Every request a caller can make on one object of the resource."""
        calls = [GET]
        if isinstance(self, TenantDeleteCases | OperatorDeleteCases):
            calls.append(Call("DELETE", verb=self.delete_verb))
        return calls + list(self.detail_calls)

    def audit_action(self, call: Call) -> str:
        return f"{self.audit_resource}.{call.verb}"


# ---- Tenant resources ------------------------------------------------------------------------


class TenantListCases(ApiCase):
    read_role: ClassVar[str] = R

    @pytest.mark.parametrize("role", ROLES)
    def test_a_list_shows_the_callers_tenants_objects_only(
        self, api: APIClient, world: World, role: str
    ) -> None:
        name = f"a_{role}"
        own, foreign = self.make(world, "a", name), self.make(world, "b", "b_admin")
        response = api.get(f"{self.url}?limit=1000", **world.caller(name).bearer())
        if not _allowed(role, self.read_role):
            error = assert_error(response, 403, "permission_denied")
            assert error["details"] == {"required_role": self.read_role, "your_role": role}
            return
        assert response.status_code == 200, body_text(response)
        assert {"results", "next", "previous"} <= set(response.json())
        assert own in _ids(response)
        assert foreign not in _ids(response)
        if len(foreign) == 36:  # a UUID: it must not appear anywhere in the answer
            assert foreign not in body_text(response)

    def test_an_operator_token_lists_nothing(self, api: APIClient, world: World) -> None:
        operator = world.caller("operator")
        self.make(world, "a")
        since = last_event_id()
        response = api.get(self.url, **operator.bearer())
        assert_error(response, 403, "operator_token")
        assert_refusal_audited(
            since,
            write=False,
            action="",
            actor_id=operator.user.pk,
            tenant_id=None,
            code="operator_token",
        )


class TenantDetailCases(ApiCase):
    read_role: ClassVar[str] = R

    def test_the_detail_shows_an_own_object_as_the_list_does(
        self, api: APIClient, world: World
    ) -> None:
        caller = world.caller("a_admin")
        pk = self.make(world, "a", "a_admin")
        shown = api.get(self.detail_url(pk), **caller.bearer())
        assert shown.status_code == 200, body_text(shown)
        assert str(shown.json()["id"]) == pk
        listed = api.get(f"{self.url}?limit=1000", **caller.bearer()).json()["results"]
        assert [item for item in listed if str(item["id"]) == pk] == [shown.json()]

    def test_an_unknown_id_is_a_404(self, api: APIClient, world: World) -> None:
        response = api.get(self.detail_url(self.unknown_pk), **world.caller("a_admin").bearer())
        assert_error(response, 404, "not_found")

    def test_another_tenants_object_is_a_404_and_stays_unchanged(
        self, api: APIClient, world: World
    ) -> None:
        """Every method on A's object, called by B's admin: a 404 (never a 403 that would
        confirm it exists), no row changed, a refused write recorded in B's tenant only."""
        pk = self.make(world, "a", "a_admin")
        intruder = world.caller("b_admin")
        for call in self.calls_on_one():
            before, since = business_rows(), last_event_id()
            response = call.send(api, self.detail_url(pk), world, intruder)
            try:
                assert_error(response, 404, "not_found")
                assert business_rows() == before
                assert_refusal_audited(
                    since, write=call.write, action=self.audit_action(call),
                    actor_id=intruder.user.pk, tenant_id=world.b.pk, code="not_found",
                )  # fmt: skip
                assert not AuditEvent.objects.filter(id__gt=since, tenant_id=world.a.pk).exists()
            except AssertionError as exc:
                raise AssertionError(f"{call}: {exc}") from exc


class TenantCreateCases(ApiCase):
    create_role: ClassVar[str] = M
    create_status: ClassVar[int] = 201

    def created_pk(self, body: Any) -> str:
        return str(body["id"])

    def tenant_of(self, row: Any) -> Any:
        return row.tenant_id

    @pytest.mark.parametrize("role", ROLES)
    def test_create_by_role(self, api: APIClient, world: World, role: str) -> None:
        caller = world.caller(f"a_{role}")
        body = self.create_body(world)  # first: it may make what the body names
        before, since = business_rows(), last_event_id()
        response = api.post(self.url, body, format="json", **caller.bearer())
        action = f"{self.audit_resource}.create"
        if not _allowed(role, self.create_role):
            error = assert_error(response, 403, "permission_denied")
            assert error["details"] == {"required_role": self.create_role, "your_role": role}
            assert business_rows() == before
            assert_refusal_audited(
                since, write=True, action=action, actor_id=caller.user.pk,
                tenant_id=world.a.pk, code="permission_denied",
            )  # fmt: skip
            return
        assert response.status_code == self.create_status, body_text(response)
        pk = self.created_pk(response.json())
        assert self.tenant_of(self.model._default_manager.get(pk=pk)) == world.a.pk
        shown = api.get(self.detail_url(pk), **caller.bearer())
        assert shown.status_code == 200, body_text(shown)
        assert str(shown.json()["id"]) == pk
        [event] = AuditEvent.objects.filter(id__gt=since, action=action, outcome="success")
        assert (event.tenant_id, event.actor_id, event.target_id) == (
            world.a.pk,
            caller.user.pk,
            pk,
        )

    def test_an_operator_token_cannot_create(self, api: APIClient, world: World) -> None:
        operator = world.caller("operator")
        body = self.create_body(world)
        before, since = business_rows(), last_event_id()
        response = api.post(self.url, body, format="json", **operator.bearer())
        assert_error(response, 403, "operator_token")
        assert business_rows() == before
        assert_refusal_audited(
            since, write=True, action=f"{self.audit_resource}.create",
            actor_id=operator.user.pk, tenant_id=None, code="operator_token",
        )  # fmt: skip


class TenantDeleteCases(ApiCase):
    delete_role: ClassVar[str] = M
    delete_status: ClassVar[int] = 204
    delete_verb: ClassVar[str] = "delete"

    def deletable(self, world: World, caller: str) -> str:
        """An object of A that `caller` could delete if its role allows."""
        return self.make(world, "a", caller)

    def assert_gone(self, api: APIClient, world: World, caller: str, pk: str, answer: Any) -> None:
        """What `caller` observes after its delete was accepted: the object is gone."""
        response = api.get(self.detail_url(pk), **world.caller(caller).bearer())
        assert_error(response, 404, "not_found")

    @pytest.mark.parametrize("role", ROLES)
    def test_delete_by_role(self, api: APIClient, world: World, role: str) -> None:
        name = f"a_{role}"
        caller = world.caller(name)
        pk = self.deletable(world, name)
        before, since = business_rows(), last_event_id()
        response = api.delete(self.detail_url(pk), **caller.bearer())
        action = f"{self.audit_resource}.{self.delete_verb}"
        if not _allowed(role, self.delete_role):
            error = assert_error(response, 403, "permission_denied")
            assert error["details"] == {"required_role": self.delete_role, "your_role": role}
            assert business_rows() == before
            assert_refusal_audited(
                since, write=True, action=action, actor_id=caller.user.pk,
                tenant_id=world.a.pk, code="permission_denied",
            )  # fmt: skip
            return
        assert response.status_code == self.delete_status, body_text(response)
        self.assert_gone(api, world, name, pk, response)
        event = AuditEvent.objects.filter(id__gt=since, action=action, outcome="success").first()
        assert event is not None, action
        assert (event.tenant_id, event.actor_id, event.target_id) == (
            world.a.pk,
            caller.user.pk,
            pk,
        )


# ---- Operator resources ----------------------------------------------------------------------


class OperatorCases(ApiCase):
    """The refusal every operator route owes a tenant caller: 403, nothing changed, and a
    refused write recorded against the caller, in the tenant its token names."""

    def assert_tenant_refused(
        self, since: int, before: Any, response: Any, call: Call, caller: Caller
    ) -> None:
        assert_error(response, 403, "permission_denied")
        assert business_rows() == before
        assert_refusal_audited(
            since, write=call.write, action=self.audit_action(call), actor_id=caller.user.pk,
            tenant_id=caller.tenant.pk if caller.tenant is not None else None,
            code="permission_denied",
        )  # fmt: skip


class OperatorListCases(OperatorCases):
    def test_an_operator_lists_every_tenants_objects(self, api: APIClient, world: World) -> None:
        first, second = self.make(world, "a"), self.make(world, "b")
        response = api.get(f"{self.url}?limit=1000", **world.caller("operator").bearer())
        assert response.status_code == 200, body_text(response)
        assert {first, second} <= set(_ids(response))

    @pytest.mark.parametrize("caller", TENANT_CALLERS)
    def test_tenant_callers_cannot_list(self, api: APIClient, world: World, caller: str) -> None:
        who = world.caller(caller)
        self.make(world, "a")
        before, since = business_rows(), last_event_id()
        response = api.get(self.url, **who.bearer())
        self.assert_tenant_refused(since, before, response, GET, who)


class OperatorDetailCases(OperatorCases):
    def test_an_operator_reads_one(self, api: APIClient, world: World) -> None:
        pk = self.make(world, "a")
        response = api.get(self.detail_url(pk), **world.caller("operator").bearer())
        assert response.status_code == 200, body_text(response)
        assert str(response.json()["id"]) == pk

    def test_an_operator_makes_each_call_on_one(self, api: APIClient, world: World) -> None:
        operator = world.caller("operator")
        pk = self.make(world, "a")
        for call in self.detail_calls:
            before = business_rows()
            response = call.send(api, self.detail_url(pk), world, operator)
            assert response.status_code == call.ok_status, (str(call), body_text(response))
            if call.write:
                assert business_rows() != before, str(call)

    @pytest.mark.parametrize("caller", TENANT_CALLERS)
    def test_tenant_callers_cannot_touch_one(
        self, api: APIClient, world: World, caller: str
    ) -> None:
        pk = self.make(world, "a")
        who = world.caller(caller)
        for call in self.calls_on_one():
            before, since = business_rows(), last_event_id()
            response = call.send(api, self.detail_url(pk), world, who)
            try:
                self.assert_tenant_refused(since, before, response, call, who)
            except AssertionError as exc:
                raise AssertionError(f"{call}: {exc}") from exc


class OperatorCreateCases(OperatorCases):
    def created_pk(self, body: Any) -> str:
        return str(body["id"])

    def test_an_operator_creates_one(self, api: APIClient, world: World) -> None:
        operator = world.caller("operator")
        body = self.create_body(world)
        since = last_event_id()
        response = api.post(self.url, body, format="json", **operator.bearer())
        assert response.status_code == 201, body_text(response)
        pk = self.created_pk(response.json())
        assert self.model._default_manager.filter(pk=pk).exists()
        action = f"{self.audit_resource}.create"
        [event] = AuditEvent.objects.filter(id__gt=since, action=action, outcome="success")
        assert (event.actor_id, event.target_id) == (operator.user.pk, pk)

    @pytest.mark.parametrize("caller", TENANT_CALLERS)
    def test_tenant_callers_cannot_create(self, api: APIClient, world: World, caller: str) -> None:
        who = world.caller(caller)
        body = self.create_body(world)
        before, since = business_rows(), last_event_id()
        response = api.post(self.url, body, format="json", **who.bearer())
        self.assert_tenant_refused(since, before, response, Call("POST", verb="create"), who)


class OperatorDeleteCases(OperatorCases):
    delete_verb: ClassVar[str] = "delete"

    def test_an_operator_deletes_one(self, api: APIClient, world: World) -> None:
        operator = world.caller("operator")
        pk = self.make(world, "a")
        since = last_event_id()
        response = api.delete(self.detail_url(pk), **operator.bearer())
        assert response.status_code == 204, body_text(response)
        assert_error(api.get(self.detail_url(pk), **operator.bearer()), 404, "not_found")
        action = f"{self.audit_resource}.{self.delete_verb}"
        assert AuditEvent.objects.filter(
            id__gt=since, action=action, outcome="success", actor_id=operator.user.pk
        ).exists()
