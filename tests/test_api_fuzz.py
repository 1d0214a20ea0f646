"""Review item 12: the API answers as its OpenAPI schema says, whatever it is sent.

Schemathesis reads the schema `/api/schema/` serves and, for every operation, sends the
schema's examples, its boundary and invalid values (the coverage phase) and a bounded number
of generated requests, with a fixed seed, to the project's WSGI application in-process: a
tenant admin's token on the tenant endpoints, an operator's on `/api/v1/admin/…`. Each answer
must be no 5xx, of a status code and a content type the operation documents, and of the
documented shape (`response_schema_conformance`). Path parameters are sometimes the id of a
real object of the caller (made in the world below), so answers about real objects are checked
too, not only 404s.

Rate limits are raised for this run (the throttles still count, in Redis); that a limit is
answered `429` with `Retry-After` is tests/tenants/test_throttling.py's.

Each operation is its own test (`test_<method>_<path>`), made from the schema when the module is
collected: schemathesis' own per-operation items all get one node id under pytest 9.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tenants import services as tenant_services
from tenants.models import Role
from tests.support.api_world import World, build_world
from tests.support.callers import SYSTEM

#: Fixed, so that a failure is found again by the next run. A longer exploration by hand:
#: ANDROMEDE_FUZZ_SEED=… ANDROMEDE_FUZZ_EXAMPLES=200 pytest tests/test_api_fuzz.py
SEED = int(os.environ.get("ANDROMEDE_FUZZ_SEED", "20261212"))
#: The application `iaas.wsgi` serves, built here without importing `iaas.wsgi`: that module
#: takes hypervisor access and the SSH key away from its process's environment (review M11),
#: which would leak into every subprocess the rest of the test run starts (workers, seeds).
application = get_wsgi_application()
#: Generated requests per operation in the fuzzing phase (the examples and coverage phases
#: add their own, a few dozen at most); at 8 the module stays under three minutes.
MAX_EXAMPLES = int(os.environ.get("ANDROMEDE_FUZZ_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: High enough that the run is never throttled, low enough that the counters still count.
RAISED_RATES = {"token": "100000/s", "user": "100000/s", "anonymous": "100000/s",
                "signin": "100000/m"}  # fmt: skip


def in_test_transaction(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """The project's WSGI application, keeping the test's database connection open as
    Django's test client does (its request signals would close it, and the test's
    transaction with it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        return list(application(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def served_schema() -> dict[str, Any]:
    """What `/api/schema/?format=json` serves (the same generator and renderer; the endpoint
    wants a signed-in caller, and nobody can sign in while tests are being collected)."""
    generator = SchemaGenerator()
    rendered = OpenApiJsonRenderer().render(generator.get_schema(request=None, public=True))
    return json.loads(rendered)


config = SchemathesisConfig.from_dict(
    {"seed": SEED, "generation": {"max-examples": MAX_EXAMPLES, "database": "none"}}
)
schema = schemathesis.openapi.from_dict(served_schema(), config=config)
schema.app = in_test_transaction  # requests go to the application in-process, as from_wsgi's


# ---- the world each operation is fuzzed in ----------------------------------------------------

#: What the ids in each path stand for: (path prefix, parameter) → how to get a real one.
REAL_IDS: dict[tuple[str, str], Callable[[World], Iterable[str]]] = {
    ("/api/v1/keypairs", "id"): lambda w: [w.pk("keypair")],
    ("/api/v1/server-groups", "id"): lambda w: [w.pk("server_group")],
    ("/api/v1/images", "id"): lambda w: [w.pk("image"), str(w.platform.image.pk)],
    ("/api/v1/flavors", "id"): lambda w: [w.pk("flavor"), str(w.platform.small.pk)],
    ("/api/v1/instances", "id"): lambda w: [
        w.pk(kind)
        for kind in ("instance", "active_instance", "stopped_instance", "resized_instance")
    ],
    ("/api/v1/instances", "volume_id"): lambda w: [w.pk("attached_volume"), w.pk("volume")],
    ("/api/v1/operations", "id"): lambda w: [w.pk("operation")],
    ("/api/v1/volumes", "id"): lambda w: [w.pk("volume"), w.pk("exportable_volume")],
    ("/api/v1/volume-snapshots", "id"): lambda w: [w.pk("exportable_snapshot")],
    ("/api/v1/exports", "id"): lambda w: [w.pk("export")],
    ("/api/v1/volume-types", "id"): lambda w: [w.pk("volume_type"), w.pk("public_volume_type")],
    ("/api/v1/members", "id"): lambda w: [w.pk("member")],
    ("/api/v1/tokens", "id"): lambda w: [str(w.token_of("a_admin").pk)],
    ("/api/v1/invitations", "id"): lambda w: [str(invitation(w).pk)],
    ("/api/v1/admin/tenants", "id"): lambda w: [w.pk("tenant"), w.pk("tenant", "b")],
    ("/api/v1/admin/zones", "id"): lambda w: [str(w.platform.zone.pk)],
    ("/api/v1/admin/hosts", "id"): lambda w: [
        w.pk("host"),
        str(w.platform.host.pk),
        w.pk("awaiting_host"),
        w.pk("failed_host"),
    ],
    ("/api/v1/admin/images", "id"): lambda w: [w.pk("image"), str(w.platform.image.pk)],
    ("/api/v1/admin/image-stores", "id"): lambda w: [w.pk("image_store")],
    ("/api/v1/admin/users", "user_id"): lambda w: [str(w.caller("a_member").user.pk)],
}


def invitation(world: World) -> Any:
    """A pending invitation of tenant B to A's admin (what `/invitations` shows it)."""
    key = ("invitation", "b")
    if key not in world.made:
        world.made[key] = tenant_services.invitation_create(
            actor=SYSTEM, tenant=world.b, username=world.caller("a_admin").user.username,
            role=Role.MEMBER,
        )  # fmt: skip
    return world.made[key]


def real_ids(world: World, path: str) -> dict[str, list[str]]:
    """The ids of real objects the caller may name in `path`'s parameters, made now (for a
    list too, so that it shows them)."""
    found: dict[str, list[str]] = {}
    for (prefix, parameter), make in REAL_IDS.items():
        if path == prefix or path.startswith(prefix + "/"):
            ids = list(make(world))
            if "{" + parameter + "}" in path:
                found[parameter] = ids
    return found


#: The world of the operation being fuzzed, for the path-parameter hook (hooks are called
#: with the schema's context only).
current: dict[str, dict[str, list[str]]] = {"ids": {}}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    """The generated value, or a real object's id, each as likely."""
    choices = [path_parameters]
    for name, ids in current["ids"].items():
        choices += [{**path_parameters, name: value} for value in ids]
    return st.sampled_from(choices)


@pytest.fixture
def world(request, settings, make_tenant, make_caller, ssh_public_keys, tiny_qcow2, image_store):
    """Tenants A and B, A's admin and an operator, and the objects the operation's path is
    about; rate limits raised."""
    settings.API_THROTTLE_RATES = RAISED_RATES
    made = build_world(make_tenant, make_caller, ssh_public_keys, tiny_qcow2)
    made.caller("a_admin")
    made.caller("operator")
    _method, path = request.node.operation_label.split(" ", 1)
    current["ids"] = real_ids(made, path)
    yield made
    current["ids"] = {}


# ---- one test per operation -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_fuzzed_schema_is_the_one_api_schema_serves(make_tenant, make_caller):
    caller = make_caller(make_tenant("acme"), Role.READER)
    client = Client()
    client.force_login(caller.user)
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response.json() == schema.raw_schema
    assert len(list(schema.get_all_operations())) >= 80


def fuzz_test(method: str, path: str) -> Callable[..., None]:
    operator = path.startswith("/api/v1/admin/")

    @pytest.mark.django_db
    @hypothesis.settings(
        deadline=None,
        suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
    )
    def test(case: Any, world: World) -> None:
        caller = world.caller("operator" if operator else "a_admin")
        case.call_and_validate(headers={"Authorization": f"Bearer {caller.token}"}, checks=CHECKS)

    return schema.include(method=method, path=path).parametrize()(test)


def _test_name(method: str, path: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", path.removeprefix("/api/v1/").lower()).strip("_")
    return f"test_{method.lower()}_{words}_answers_as_documented"


for _path, _methods in schema.raw_schema["paths"].items():
    for _method in _methods:
        if _method in {"get", "put", "post", "patch", "delete"}:
            globals()[_test_name(_method, _path)] = fuzz_test(_method.upper(), _path)
