"""Driving instances through the API as a tenant does: create one, run its operation as the
worker would, call a verb, read what the tenant sees. Shared by the compute tests (the
`cloud` fixture in tests/conftest.py is the world they act in)."""

from __future__ import annotations

from typing import Any

from operations.worker import run_operation


def create(client: Any, image: Any, **overrides: Any) -> Any:
    """POST /instances with the `cloud` defaults (flavor small, keypair laptop)."""
    body = {"name": "web-1", "flavor": "small", "image": str(image.pk), "keypair": "laptop",
            "user_data": "#cloud-config\n"} | overrides  # fmt: skip
    return client.post("/api/v1/instances", body, format="json")


def create_building(cloud: Any, name: str = "web-b") -> str:
    """An instance the worker has not built yet (`building`); its id."""
    return create(cloud.client, cloud.image, name=name).json()["instance"]["id"]


def active_instance(cloud: Any, name: str = "web-1") -> str:
    """An instance created through the API and built by the worker; its id."""
    created = create(cloud.client, cloud.image, name=name).json()
    assert run_operation(created["operation"]["id"]) == "succeeded"
    return created["instance"]["id"]


def verb(client: Any, instance_id: str, name: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(f"/api/v1/instances/{instance_id}/{name}", body or {}, format="json")


def run_verb(
    client: Any, instance_id: str, name: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Call a verb, check it was accepted, run its operation; the finished operation."""
    answer = verb(client, instance_id, name, body)
    assert answer.status_code == 202, answer.content
    operation = answer.json()["operation"]
    assert operation["status"] == "queued"
    assert operation["action"] == f"instance.{name}"
    assert run_operation(operation["id"]) == "succeeded"
    return operation_shown(client, operation["id"])


def operation_shown(client: Any, operation_id: str) -> dict[str, Any]:
    return client.get(f"/api/v1/operations/{operation_id}").json()


def shown(client: Any, instance_id: str) -> tuple[str, str | None, str]:
    """(status, task_state, power_state) as the tenant reads them."""
    body = client.get(f"/api/v1/instances/{instance_id}").json()
    return body["status"], body["task_state"], body["power_state"]
