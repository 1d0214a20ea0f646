"""GET /api/v1/ links to every collection of the API, found in the URL map: a new resource
appears without anyone editing the root."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

EVERY_COLLECTION = {
    "keypairs", "server_groups", "flavors", "images", "instances", "operations", "tokens",
    "members", "audit_events", "admin_tenants", "admin_audit_events", "admin_zones",
    "admin_hosts", "admin_images", "admin_flavors",
}  # fmt: skip


def test_the_root_links_to_every_collection_and_each_link_answers(make_caller: Any) -> None:
    answer = APIClient().get("/api/v1/")
    assert answer.status_code == 200
    links = answer.json()["links"]
    assert set(links) >= EVERY_COLLECTION
    assert {"me", "tenant", "quotas", "schema", "docs"} <= set(links)
    assert links["server_groups"] == "http://testserver/api/v1/server-groups"
    assert links["admin_hosts"] == "http://testserver/api/v1/admin/hosts"
    operator = make_caller(None, operator=True).client()  # operators reach the admin_… links
    for key in sorted(EVERY_COLLECTION):
        url = links[key].removeprefix("http://testserver")
        if key.startswith("admin_"):
            assert operator.get(url).status_code == 200, url
        else:  # a tenant's: the operator's token is refused, the route exists
            assert operator.get(url).status_code == 403, url


def test_the_root_lists_only_routes_that_exist() -> None:
    from django.urls import resolve

    links = APIClient().get("/api/v1/").json()["links"]
    for key, url in links.items():
        path = url.removeprefix("http://testserver")
        assert resolve(path.split("?")[0]), key
