"""The multi-host path (issue 10 item 6): a port on a second chassis reaches a guest on the
first through Geneve. The guest is booted through the API on the session's OVN lab (chassis
``andromede-test-1``); the second chassis (its own OVS and ovn-controller in a network
namespace, an underlay in 192.0.2.0/24: tests/support/ovn_chassis.py) holds a namespace
bound to a port the tenant made through the API on the guest's network."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import subprocess
import time
import uuid

import pytest

from tests.support.ovn_chassis import (
    CHASSIS_UNDERLAY_IP,
    LAB_UNDERLAY_IP,
    TENANT_MTU,
    Vm,
    bound_chassis,
    second_chassis,
)
from tests.support.ovn_cloud import boot, ovn_cloud, wait_for

pytestmark = [pytest.mark.hypervisor, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cloud(settings, ovn_lab):
    with ovn_cloud(settings, ovn_lab) as made:
        yield made


@pytest.fixture
def chassis(ovn_lab):
    with second_chassis(ovn_lab) as made:
        yield made


def _vm_on_chassis_2(
    client, cloud, chassis, network: str, on_lab: bool = False, **extra
) -> tuple[dict, Vm]:
    """A port made through the API on `network` (with `extra` in the request), once OVN
    has it, and a namespace on the second chassis (the lab's with `on_lab`) plugged as
    that port."""
    answer = client.post("/api/v1/ports", {"network": network} | extra, format="json")
    assert answer.status_code == 201, answer.content
    port = answer.json()
    url = f"/api/v1/ports/{port['id']}"
    wait_for(lambda: client.get(url).json()["status"] == "active", 30, "the port to be active")
    (fixed,) = port["fixed_ips"]
    subnet = client.get(f"/api/v1/subnets/{fixed['subnet']}").json()
    prefix = ipaddress.ip_network(subnet["cidr"]).prefixlen
    vm = chassis.plug(port["id"], port["mac_address"], fixed["ip_address"], prefix, on_lab)
    wait_for(lambda: cloud.lab.lsp_up(port["id"]), 30, "the VM's port to be up", every=0.05)
    return port, vm


def _guest(client, cloud) -> tuple[dict, dict]:
    instance = boot(client, cloud, "web-1")
    (port,) = client.get(f"/api/v1/ports?device_id={instance['id']}").json()["results"]
    return instance, port


def test_a_port_on_a_second_chassis_reaches_a_guest_on_the_first_through_geneve(
    cloud, chassis, make_tenant, make_caller
):
    client = make_caller(make_tenant("acme"), "member").client()
    instance, guest_port = _guest(client, cloud)
    plugged = time.monotonic()
    port, vm = _vm_on_chassis_2(client, cloud, chassis, guest_port["network"])
    up_after = time.monotonic() - plugged

    assert bound_chassis(cloud.lab, port["id"]) == chassis.name
    assert bound_chassis(cloud.lab, guest_port["id"]) == cloud.lab.chassis
    before = chassis.tunnel_statistics()
    started = time.monotonic()
    # Both ports are in the tenant's default group, which lets in its own members.
    assert chassis.ping(vm, instance["ip"], attempts=20)
    answered_after = time.monotonic() - started
    flows = chassis.datapath_flows()

    # OVS writes interface statistics to its database every 5 s.
    wait_for(
        lambda: all(
            chassis.tunnel_statistics()[key] > before[key] for key in ("tx_packets", "rx_packets")
        ),
        15, "packets both ways on the second chassis' Geneve port",
    )  # fmt: skip
    # The echoes left chassis 2 inside a Geneve header to the lab's endpoint.
    header = f"ipv4(src={CHASSIS_UNDERLAY_IP},dst={LAB_UNDERLAY_IP}"
    pushes = [line for line in flows.splitlines() if "tnl_push" in line and header in line]
    assert any("geneve(" in line for line in pushes), flows

    # The tenant MTU is what Geneve leaves of the underlay's 1500 bytes: a full 1442-byte
    # packet crosses; a 1500-byte one (the VM told a larger MTU) is dropped by the sender.
    assert chassis.ping(vm, instance["ip"], attempts=3, size=TENANT_MTU - 28)
    chassis.vm(vm, "ip", "link", "set", "eth0", "mtu", "1500")
    assert not chassis.ping(vm, instance["ip"], attempts=3, size=1500 - 28)
    print(
        f"chassis 2: POST port → plugged and up {up_after:.2f} s; then → the guest's first echo "
        f"reply {answered_after:.2f} s"
    )


def test_the_guests_security_group_holds_for_a_port_on_the_second_chassis(
    cloud, chassis, make_tenant, make_caller
):
    client = make_caller(make_tenant("acme"), "member").client()
    instance, guest_port = _guest(client, cloud)
    port, vm = _vm_on_chassis_2(client, cloud, chassis, guest_port["network"], security_groups=[])
    subnet = client.get(f"/api/v1/subnets/{port['fixed_ips'][0]['subnet']}").json()

    # Outside the default group: the guest's chassis drops its echoes; the network's
    # router still answers, so the port itself works.
    assert chassis.ping(vm, subnet["gateway_ip"], attempts=5)
    assert not chassis.ping(vm, instance["ip"], attempts=3)

    group = client.get("/api/v1/security-groups?name=default").json()["results"][0]
    url = f"/api/v1/ports/{port['id']}"
    changed = client.patch(url, {"security_groups": [group["id"]]}, format="json")
    assert changed.status_code == 200, changed.content
    started = time.monotonic()
    assert chassis.ping(vm, instance["ip"], attempts=20)
    print(f"joined the guest's group → first echo reply across chassis: "
          f"{time.monotonic() - started:.2f} s")  # fmt: skip


def test_tcp_crosses_geneve_intact_between_the_two_chassis(
    cloud, chassis, make_tenant, make_caller, tmp_path
):
    """TCP is what guests' SSH rides on: through the userspace datapath's Geneve (outer UDP
    checksum computed by ovs-vswitchd) a 2 MB download arrives byte for byte."""
    client = make_caller(make_tenant("acme"), "member").client()
    network = client.post("/api/v1/networks", {"name": "net-1"}, format="json").json()
    subnet = client.post(
        "/api/v1/subnets", {"network": network["id"], "cidr": "198.51.100.0/24"}, format="json"
    )
    assert subnet.status_code == 201, subnet.content
    server_port, server = _vm_on_chassis_2(client, cloud, chassis, network["id"], on_lab=True)
    client_port, client_vm = _vm_on_chassis_2(client, cloud, chassis, network["id"])
    assert bound_chassis(cloud.lab, server_port["id"]) == cloud.lab.chassis
    assert bound_chassis(cloud.lab, client_port["id"]) == chassis.name
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(2 * 1024 * 1024))
    # busybox httpd forks into the background, in the server's namespace: the chassis'
    # cleanup kills it with everything else there.
    chassis.vm(server, "busybox", "httpd", "-p", "8080", "-h", str(tmp_path))
    assert chassis.ping(client_vm, server.ip, attempts=10)

    fetched = subprocess.run(
        ["ip", "netns", "exec", client_vm.netns,
         "busybox", "wget", "-q", "-O", "-", f"http://{server.ip}:8080/payload"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    assert hashlib.sha256(fetched.stdout).digest() == hashlib.sha256(payload.read_bytes()).digest()


def test_the_second_chassis_leaves_nothing_behind(ovn_lab):
    encap_before = ovn_lab.vsctl("get", "open", ".", "external_ids:ovn-encap-ip")
    bridges_before = sorted(ovn_lab.vsctl("list-br").split())
    ports_before = ovn_lab.vsctl("list-ports", ovn_lab.integration_bridge)
    with second_chassis(ovn_lab) as made:
        vm = made.plug(str(uuid.uuid4()), "0a:00:00:00:00:01", "198.51.100.250", 24)
        beside = made.plug(str(uuid.uuid4()), "0a:00:00:00:00:02", "198.51.100.251", 24, True)
        assert ovn_lab.vsctl("list-ports", ovn_lab.integration_bridge) != ports_before
        assert made.pids()
        assert ovn_lab.vsctl("get", "open", ".", "external_ids:ovn-encap-ip") != encap_before

    assert made.name not in ovn_lab.sbctl("--bare", "--columns=name", "list", "Chassis")
    assert ovn_lab.vsctl("--bare", "--columns=name", "find", "interface", "type=geneve") == ""
    assert sorted(ovn_lab.vsctl("list-br").split()) == bridges_before
    assert ovn_lab.vsctl("list-ports", ovn_lab.integration_bridge) == ports_before
    assert ovn_lab.vsctl("get", "open", ".", "external_ids:ovn-encap-ip") == encap_before
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    assert made.netns not in listed.stdout
    assert vm.netns not in listed.stdout
    assert beside.netns not in listed.stdout
    assert not made.directory.exists()
