"""Tenant networks on OVN, as a tenant sees them (issue 10): through the API only, a real
Celery worker (host and control queues), the session's OVN lab (its own OVS, OVN and
libvirtd in a namespace: tests/support/ovn_lab.py) and the project's test image under TCG."""

from __future__ import annotations

import time

import pytest

from network.models import Port
from tests.support.ovn_cloud import boot, ovn_cloud, wait_for

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cloud(settings, ovn_lab):
    with ovn_cloud(settings, ovn_lab) as made:
        yield made


def test_a_security_group_rule_opens_a_floating_ip_to_the_outside_and_its_removal_shuts_it(
    cloud, make_tenant, make_caller
):
    client = make_caller(make_tenant("acme"), "member").client()
    instance = boot(client, cloud, "web-1")
    port = Port.objects.get(device_id=instance["id"])
    assert port.status == "active"
    assert cloud.lab.lsp_up(str(port.pk))
    floating = client.post(
        "/api/v1/floating-ips", {"network": "public", "port": str(port.pk)}, format="json"
    )
    assert floating.status_code == 201, floating.content
    address = floating.json()["address"]
    wait_for(
        lambda: client.get(f"/api/v1/floating-ips/{floating.json()['id']}").json()["status"]
        == "active",
        30, "the floating IP to be active",
    )  # fmt: skip
    # The default group lets in only its own members: the outside gets no answer.
    assert not cloud.lab.ping_from_outside(address, attempts=3)

    group = client.get("/api/v1/security-groups?name=default").json()["results"][0]
    started = time.monotonic()
    rule = client.post(
        "/api/v1/security-group-rules",
        {"security_group": group["id"], "direction": "ingress", "protocol": "icmp",
         "remote_ip_prefix": "203.0.113.128/25"},
        format="json",
    )  # fmt: skip
    assert rule.status_code == 201, rule.content
    assert cloud.lab.ping_from_outside(address, attempts=20)
    opened_after = time.monotonic() - started

    assert client.delete(f"/api/v1/security-group-rules/{rule.json()['id']}").status_code == 204
    time.sleep(2)  # OVN's flows follow within milliseconds; the worker's queue, within seconds
    assert not cloud.lab.ping_from_outside(address, attempts=3)
    print(f"rule API call → first answer through the floating IP: {opened_after:.2f} s")
