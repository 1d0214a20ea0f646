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
    open_ssh,
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
        door = open_ssh(client, guest.port)
        fips[guest.name] = (door.address, door.rule)
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


SPOOF_PROBE = """#!/bin/sh
# Port security: with another MAC, then with another address, this guest reaches nobody.
iface=$(for d in /sys/class/net/*; do
    [ "$(cat $d/address)" = "{mac}" ] && echo ${{d##*/}}; done)
ping -c 3 -W 2 {peer} >/dev/null 2>&1; echo "own=$?"
ip link set "$iface" down; ip link set "$iface" address 52:54:00:de:ad:01
ip link set "$iface" up; ip route add default via {gateway} 2>/dev/null
ping -c 3 -W 2 {peer} >/dev/null 2>&1; echo "mac=$?"
ip link set "$iface" down; ip link set "$iface" address {mac}; ip link set "$iface" up
ip addr flush dev "$iface"; ip addr add {other}/24 dev "$iface"
ping -c 3 -W 2 {peer} >/dev/null 2>&1; echo "ip=$?"
"""


def test_a_spoofing_guest_reaches_nobody_and_a_nic_attached_live_gets_its_address(
    cloud, make_tenant, make_caller, tmp_path
):
    private, _ = tenant_keys(tmp_path)
    client = make_caller(make_tenant("acme"), "member").client()
    client.post("/api/v1/keypairs",
                {"name": "k", "public_key": private.with_suffix(".pub").read_text()},
                format="json")  # fmt: skip
    a1 = boot_guest(client, cloud, "a1", keypair="k")

    # A guest that changes its MAC, then its address, loses its peer (the control: with
    # its own, it reaches it; the default group lets members ping each other).
    # The probe needs its own MAC: its port is made first, then the instance on it.
    network = client.get("/api/v1/networks?name=default").json()["results"][0]
    own = client.post("/api/v1/ports", {"network": network["id"]}, format="json").json()
    prefix = a1.ip.rsplit(".", 1)[0]
    probe = SPOOF_PROBE.format(
        mac=own["mac_address"], peer=a1.ip, gateway=f"{prefix}.1", other=f"{prefix}.99"
    )
    probed = boot(client, cloud, "spoofer", ports=[own["id"]], user_data=probe)
    url = f"/api/v1/instances/{probed['id']}/console"
    console = wait_for(
        lambda: "ANDROMEDE-PROBE-END" in (out := client.get(url).json()["output"]) and out,
        90, "the spoof probe", every=1,
    )  # fmt: skip
    lines = console.split("ANDROMEDE-PROBE-BEGIN")[-1].split("ANDROMEDE-PROBE-END")[0]
    results = dict(line.strip().split("=") for line in lines.splitlines() if "=" in line)
    assert results == {"own": "0", "mac": "1", "ip": "1"}, console[-2000:]

    # A NIC attached live on a second network gets its address from OVN's DHCP.
    address = open_ssh(client, a1.port).address
    before = outside_ssh(cloud.lab, address, a1.host_key, private, "hostname")
    assert before.returncode == 0, before.stderr
    back = client.post("/api/v1/networks", {"name": "back"}, format="json").json()
    subnet = client.post("/api/v1/subnets", {"network": back["id"], "cidr": "198.51.100.0/24"},
                         format="json")  # fmt: skip
    assert subnet.status_code == 201, subnet.content
    attached = client.post(f"/api/v1/instances/{a1.id}/interfaces", {"network": "back"},
                           format="json")  # fmt: skip
    assert attached.status_code == 202, attached.content
    nic = attached.json()["port"]
    operation = attached.json()["operation"]["id"]
    wait_for(
        lambda: client.get(f"/api/v1/operations/{operation}").json()["status"]
        in ("succeeded", "failed"),
        60, "the attach",
    )  # fmt: skip
    assert client.get(f"/api/v1/operations/{operation}").json()["status"] == "succeeded"
    # The lease's address only (the image's own udhcpc script would also move the default
    # route to the new NIC, and this session's answers with it).
    lease = (
        'printf \'#!/bin/sh\\n[ "$1" = bound ] && ifconfig "$interface" "$ip" netmask'
        ' "$subnet" up\\nexit 0\\n\' > /tmp/lease.sh; chmod +x /tmp/lease.sh;'
        # The guest takes the hot-plugged NIC a moment after libvirt did (ACPI, TCG): wait
        # for it, bounded (20 s).
        ' n=0; i=; while [ -z "$i" ] && [ $n -lt 40 ]; do'
        f' i=$(for d in /sys/class/net/*; do [ "$(cat $d/address)" = "{nic["mac_address"]}" ]'
        ' && echo ${d##*/}; done); [ -z "$i" ] && sleep 0.5; n=$((n + 1)); done;'
        ' ip link set "$i" up;'
        ' udhcpc -i "$i" -n -q -t 5 -T 2 -s /tmp/lease.sh >/dev/null 2>&1;'
        ' ip -4 -o addr show dev "$i"'
    )
    shown = outside_ssh(cloud.lab, address, a1.host_key, private, lease)
    assert shown.returncode == 0, shown.stderr
    assert f" {nic['fixed_ips'][0]['ip_address']}/24 " in shown.stdout.decode(), shown.stdout
