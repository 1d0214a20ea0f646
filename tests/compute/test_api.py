"""The compute API's resources through the generic cases (tests/support/api_cases.py): each
class declares what differs; the cases check lists, details, creates and deletes by role,
another tenant's objects, and operator tokens."""

from __future__ import annotations

from typing import Any, ClassVar

from compute.models import Flavor, Instance, KeyPair, ServerGroup
from operations.worker import run_operation
from tests.support.api_cases import (
    Call,
    OperatorCreateCases,
    OperatorListCases,
    TenantCreateCases,
    TenantDeleteCases,
    TenantDetailCases,
    TenantListCases,
)
from tests.support.api_checks import assert_error
from tests.support.api_world import World


class TestKeyPairs(TenantListCases, TenantDetailCases, TenantCreateCases, TenantDeleteCases):
    url = "/api/v1/keypairs"
    model = KeyPair
    kind = "keypair"
    audit_resource = "keypair"

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "new-key", "public_key": world.keys["ecdsa"]}


class TestServerGroups(TenantListCases, TenantDetailCases, TenantCreateCases, TenantDeleteCases):
    url = "/api/v1/server-groups"
    model = ServerGroup
    kind = "server_group"
    audit_resource = "server_group"

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "new-group", "policy": "affinity"}


class TestFlavors(TenantListCases, TenantDetailCases):
    """A tenant sees the public flavors and its private ones (B's private one is a 404)."""

    url = "/api/v1/flavors"
    model = Flavor
    kind = "flavor"


class TestInstances(TenantListCases, TenantDetailCases, TenantCreateCases, TenantDeleteCases):
    """Creating answers 202 with the building instance and its operation; deleting answers
    202 with the operation that removes it."""

    url = "/api/v1/instances"
    model = Instance
    kind = "instance"
    audit_resource = "instance"
    create_status = 202
    delete_status = 202
    detail_calls: ClassVar[tuple[Call, ...]] = (
        Call("POST", "start", verb="start"),
        Call("POST", "stop", verb="stop"),
        Call("POST", "reboot", lambda w: {"type": "hard"}, verb="reboot"),
        Call("POST", "rebuild", lambda w: {"image": str(w.platform.image.pk)}, verb="rebuild"),
        Call("POST", "resize", lambda w: {"flavor": "big"}, verb="resize"),
        Call("POST", "confirm-resize", verb="confirm_resize"),
        Call("POST", "revert-resize", verb="revert_resize"),
        Call("POST", "snapshot", lambda w: {"name": "snap"}, verb="snapshot"),
        Call("GET", "console"),
        Call("GET", "operations"),
    )

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "new-vm", "flavor": "small", "image": str(world.platform.image.pk)}

    def created_pk(self, body: Any) -> str:
        assert body["operation"]["action"] == "instance.create"
        assert body["instance"]["status"] == "building"
        return str(body["instance"]["id"])

    def deletable(self, world: World, caller: str) -> str:
        return world.pk("active_instance")  # a building instance cannot be deleted yet

    def assert_gone(self, api: Any, world: World, caller: str, pk: str, answer: Any) -> None:
        """Accepted: the operation removes it; once it ran, the instance is a 404."""
        operation = answer.json()["operation"]
        assert operation["action"] == "instance.delete"
        assert run_operation(operation["id"]) == "succeeded"
        response = api.get(self.detail_url(pk), **world.caller(caller).bearer())
        assert_error(response, 404, "not_found")


class TestOperatorFlavors(OperatorListCases, OperatorCreateCases):
    """Operators list every flavor (private ones too) and define new ones."""

    url = "/api/v1/admin/flavors"
    model = Flavor
    kind = "flavor"
    audit_resource = "flavor"

    def create_body(self, world: World) -> dict[str, Any]:
        return {"name": "c2-large", "vcpus": 2, "memory_mb": 2048, "disk_gb": 20}
