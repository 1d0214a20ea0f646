"""Tenant networks on OVN, as a tenant sees them (issue 10): through the API only, a real
Celery worker (host and control queues), the session's OVN lab (its own OVS, OVN and
libvirtd in a namespace: tests/support/ovn_lab.py) and the project's test image under TCG."""

from __future__ import annotations

import subprocess
import time

import pytest

from network.models import Port
from tests.support.ovn_cloud import (
    boot,
    boot_guest,
    outside_ssh,
    ovn_cloud,
    tenant_keys,
    wait_for,
)

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


#: Ports a guest must never reach on its host (SSH, PostgreSQL, Redis, libvirt, OVN NB/SB).
GUARDED_PORTS = (22, 5432, 6379, 16509, 6641, 6642)
LISTENERS = r"""
import socket, sys, time
servers = []
for port in map(int, sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16); servers.append(s)
print("listening", flush=True)
time.sleep(600)
"""
PEER_LOGGER = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(4); s.settimeout(60)
print("listening", flush=True)
conn, peer = s.accept()
print(peer[0], conn.recv(100).decode().strip(), flush=True)
"""


def _ssh(cloud, guest_or_address, key, private, command, **kw):
    address = guest_or_address
    return outside_ssh(cloud.lab, address, key, private, command, **kw)


def test_tenant_networks_carry_ssh_between_guests_keep_tenants_apart_and_guard_the_host(
    cloud, make_tenant, make_caller, tmp_path
):
    lab = cloud.lab
    private, dropbear_key = tenant_keys(tmp_path)
    public_key = private.with_suffix(".pub").read_text()
    clients = {}
    for slug in ("acme", "globex"):
        client = make_caller(make_tenant(slug), "member").client()
        answer = client.post("/api/v1/keypairs", {"name": "k", "public_key": public_key},
                             format="json")  # fmt: skip
        assert answer.status_code == 201, answer.content
        clients[slug] = client
    acme, globex = clients["acme"], clients["globex"]

    # Two guests of acme, two of globex: both tenants on the same default CIDR.
    a1 = boot_guest(acme, cloud, "a1", keypair="k")
    a2 = boot_guest(acme, cloud, "a2", keypair="k")
    g1 = boot_guest(globex, cloud, "g1", keypair="k")
    g2 = boot_guest(globex, cloud, "g2", keypair="k")
    assert (a1.ip, a2.ip) == (g1.ip, g2.ip)  # overlapping addresses just work

    # The outside may SSH in once a rule allows it, through a floating IP.
    fips = {}
    for client, guest in ((acme, a1), (globex, g1)):
        group = client.get("/api/v1/security-groups?name=default").json()["results"][0]
        rule = client.post("/api/v1/security-group-rules",
                           {"security_group": group["id"], "direction": "ingress",
                            "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                            "remote_ip_prefix": "203.0.113.128/25"}, format="json")  # fmt: skip
        assert rule.status_code == 201, rule.content
        fip = client.post("/api/v1/floating-ips", {"network": "public", "port": guest.port},
                          format="json")  # fmt: skip
        assert fip.status_code == 201, fip.content
        fips[guest.name] = (fip.json()["address"], rule.json()["id"])
    a1_fip, a1_rule = fips["a1"]
    g1_fip, _ = fips["g1"]

    login = _ssh(cloud, a1_fip, a1.host_key, private, "hostname")
    assert login.returncode == 0, login.stderr
    assert login.stdout.decode().strip() == "a1"
    # a1 logs into a2 over the tenant network (dbclient, the tenant's key in its format).
    install = "cat > /root/id && chmod 600 /root/id"
    put_key = _ssh(cloud, a1_fip, a1.host_key, private, install, stdin=dropbear_key.read_bytes())
    assert put_key.returncode == 0, put_key.stderr
    hop = _ssh(cloud, a1_fip, a1.host_key, private,
               f"dbclient -y -i /root/id root@{a2.ip} hostname")  # fmt: skip
    assert hop.returncode == 0, hop.stderr
    assert hop.stdout.decode().strip().endswith("a2")
    # globex's g1, on the same CIDR, reaches its own g2 at that address, never acme's a2.
    _ssh(cloud, g1_fip, g1.host_key, private, install, stdin=dropbear_key.read_bytes())
    other = _ssh(cloud, g1_fip, g1.host_key, private,
                 f"dbclient -y -i /root/id root@{a2.ip} hostname")  # fmt: skip
    assert other.stdout.decode().strip().endswith("g2"), other

    # SNAT: a2 (no floating IP) reaches the outside as the router's gateway address.
    logger = subprocess.Popen(
        ["ip", "netns", "exec", lab.outside_netns, "python3", "-c", PEER_LOGGER],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert logger.stdout is not None
        assert logger.stdout.readline().strip() == "listening"
        sent = _ssh(cloud, a1_fip, a1.host_key, private,
                    f"dbclient -y -i /root/id root@{a2.ip} "
                    "'echo from-a2 | nc -w 5 203.0.113.129 8080'")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        peer, text = logger.stdout.readline().split()
    finally:
        logger.kill()
    router = acme.get("/api/v1/routers").json()["results"][0]
    gateway_ip = router["external_gateway"]["fixed_ips"][0]["ip_address"]
    assert (peer, text) == (gateway_ip, "from-a2")

    # The host: nothing of it answers a guest, on any of its addresses, even with every
    # guarded port listening there (the lab's namespace stands for the hypervisor).
    addresses = [
        line.split()[3].split("/")[0]
        for line in lab.run("ip", "-o", "-4", "addr").splitlines()
        if " lo " not in line
    ]
    assert "203.0.113.254" in addresses  # its provider-side address
    listeners = subprocess.Popen(
        ["nsenter", "-t", str(lab.holder.pid), "-n", "python3", "-c", LISTENERS,
         *map(str, GUARDED_PORTS)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert listeners.stdout is not None
        assert listeners.stdout.readline().strip() == "listening"
        probes = " ".join(
            f"nc -w 2 -z {address} {port} && echo open-{address}-{port};"
            for address in addresses
            for port in GUARDED_PORTS
        )
        probed = _ssh(cloud, a1_fip, a1.host_key, private, probes + " echo done", timeout=120)
        assert probed.stdout.decode().split() == ["done"], probed.stdout
        # The listeners are up: the host itself reaches them.
        reach = "import socket; socket.create_connection(('203.0.113.254', 22), 2); print('open')"
        assert "open" in lab.run("python3", "-c", reach)
        # No IPv6 on the guest's tap: no link-local to reach either.
        taps = lab.run("ip", "-o", "-6", "addr")
        assert "tap" not in taps, taps
    finally:
        listeners.kill()

    # Deleting the SSH rule shuts the door on the running guest.
    assert acme.delete(f"/api/v1/security-group-rules/{a1_rule}").status_code == 204
    time.sleep(2)
    shut = _ssh(cloud, a1_fip, a1.host_key, private, "hostname", timeout=5, connect_timeout=3)
    assert shut.returncode == 255, shut
