"""A cloud on the session's OVN lab (tests/support/ovn_lab.py), for end-to-end tests through
the API: the control plane's settings pointed at the lab's northbound database, the lab's
libvirtd onboarded as a host (qemu/TCG, userspace datapath), the test image and the `tiny`
flavor, the operators' external network `public` on the lab's provider bridge, and a Celery
worker serving both the host's queue and the control queue (the network tasks)."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.contrib.testing.worker import start_worker

from hosts.models import Host
from hosts.services import onboarding, zones
from iaas.audit import Actor
from iaas.celery import CONTROL_QUEUE, app, host_queue
from images.models import Image
from network.models import Network
from network.northbound import close_all as close_northbound
from network.services.networks import provider_network_create
from network.services.subnets import subnet_create
from tests.support.ovn_lab import OvnLab
from tests.support.ssh_guest import GuestHostKey, host_key_from_console
from tests.support.sshd import keygen

SYSTEM = Actor.system("e2e-ovn")
HOST = "ovn-lab-1"
#: The floating-IP pool of `public`, inside the lab's provider range 203.0.113.128/25 (the
#: lab's outside namespace is .129, the network's gateway).
POOL = {"start": "203.0.113.150", "end": "203.0.113.199"}


@dataclass
class OvnCloud:
    lab: OvnLab
    host: Host
    image: Image
    public: Network


@contextlib.contextmanager
def ovn_cloud(settings: Any, lab: OvnLab) -> Iterator[OvnCloud]:
    """The cloud described above, for one test; its worker stops and its connections to
    the NB close at the end (the lab's domains go with the lab)."""
    from hosts.hypervisors import close_all as close_hypervisors
    from tests.e2e.conftest import import_test_image_and_tiny_flavor

    settings.OVN_NB_REMOTE = lab.nb_remote
    settings.OVN_OWNER = f"e2e-{secrets.token_hex(3)}"  # this test's rows only
    settings.OVN_GATEWAY_CHASSIS = [lab.chassis]
    settings.TENANT_DEFAULT_CIDR = "192.0.2.0/24"
    settings.INSTANCE_BOOT_TIMEOUT_SECONDS = 90
    settings.PORT_REALISE_TIMEOUT_SECONDS = 30
    settings.IMAGE_STORE_DIR = lab.directory / f"image-store-{settings.OVN_OWNER}"
    settings.IMAGE_STORE_ZONE = "fr-ovn-1"
    zone = zones.zone_create(
        actor=SYSTEM, region="fr-ovn", name="fr-ovn-1", site="lab", city="Paris", country="FR",
        jurisdiction="FR",
    )  # fmt: skip
    host = onboarding.host_onboard(
        actor=SYSTEM,
        registration=onboarding.HostRegistration(
            name=HOST, zone=zone, libvirt_uri=lab.libvirt_uri,
            storage_root=str(lab.storage_root), domain_type="qemu",
            ovs_bridge=lab.integration_bridge, ovs_datapath="netdev",
        ),
    )  # fmt: skip
    image = import_test_image_and_tiny_flavor()
    public = provider_network_create(actor=SYSTEM, name="public", physical_network=lab.physnet)
    subnet_create(
        actor=SYSTEM, tenant=None, network=public, cidr="203.0.113.128/25",
        gateway_ip="203.0.113.129", allocation_pools=[POOL],
    )  # fmt: skip
    worker = start_worker(
        app, queues=[host_queue(HOST), CONTROL_QUEUE], pool="threads", concurrency=4,
        perform_ping_check=False,
    )  # fmt: skip
    try:
        with worker:
            yield OvnCloud(lab=lab, host=host, image=image, public=public)
    finally:
        close_northbound()
        close_hypervisors()
        forget(lab, settings.OVN_OWNER)


def forget(lab: OvnLab, owner: str) -> None:
    """What one test left in the session's lab: its guests (destroyed and undefined) and its
    rows in the NB (by owner). Otherwise the next test's router would take the same provider
    address as this one's, still answering ARP for it."""
    import libvirt

    from hypervisor.ovn.northbound import Northbound

    conn = libvirt.open(lab.libvirt_uri)
    try:
        for domain in conn.listAllDomains():
            with contextlib.suppress(libvirt.libvirtError):
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
    finally:
        conn.close()
    with Northbound(lab.nb_remote, owner=owner, timeout=10) as nb:
        inventory = nb.inventory()
        for router in inventory.routers:
            nb.delete_router(router.name)
        for group in inventory.port_groups:
            nb.delete_port_group(group.name)
        for switch in inventory.switches:
            nb.delete_switch(switch.name)


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def boot(client: Any, cloud: OvnCloud, name: str, **extra: Any) -> dict[str, Any]:
    """Create an instance through the API and wait until its guest printed its ready line
    with the address the API shows; the instance as the API shows it then."""
    body = {"name": name, "flavor": "tiny", "image": str(cloud.image.pk)} | extra
    answer = client.post("/api/v1/instances", body, format="json")
    assert answer.status_code == 202, answer.content
    instance = answer.json()["instance"]
    url = f"/api/v1/instances/{instance['id']}"
    shown = wait_for(
        lambda: (body := client.get(url).json())["status"] != "building" and body,
        150, f"{name} to leave building",
    )  # fmt: skip
    assert shown["status"] == "active", shown
    ready = f"ANDROMEDE-READY instance-id={instance['id']} ip={instance['ip']}"
    wait_for(
        lambda: ready in client.get(f"{url}/console").json()["output"],
        90, f"{name}'s ready line", every=1,
    )  # fmt: skip
    return shown


@dataclass(frozen=True)
class Guest:
    """A booted instance as a tenant sees it: its id, first port and address, and the SSH
    host key it printed on its console (pinned for every login)."""

    id: str
    name: str
    port: str
    ip: str
    host_key: GuestHostKey


def boot_guest(client: Any, cloud: OvnCloud, name: str, **extra: Any) -> Guest:
    """`boot`, then the guest's port and its console's SSH host key."""
    shown = boot(client, cloud, name, **extra)
    console = client.get(f"/api/v1/instances/{shown['id']}/console").json()["output"]
    ports = client.get(f"/api/v1/instances/{shown['id']}/interfaces").json()
    return Guest(
        id=shown["id"], name=name, port=ports[0]["id"], ip=shown["ip"],
        host_key=host_key_from_console(console),
    )  # fmt: skip


@dataclass(frozen=True)
class SshDoor:
    """What `open_ssh` made: the floating IP's address and the rule that lets SSH in."""

    address: str
    floating_ip: str
    rule: str


def open_ssh(client: Any, port: str, *, wait: bool = False) -> SshDoor:
    """Through the API, as a tenant would: a rule in its default group allowing tcp/22 from
    the lab's provider range, and a floating IP from `public` on `port`. With `wait`, until
    the floating IP is active (else the caller's first login retries)."""
    group = client.get("/api/v1/security-groups?name=default").json()["results"][0]
    rule = client.post(
        "/api/v1/security-group-rules",
        {"security_group": group["id"], "direction": "ingress", "protocol": "tcp",
         "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "203.0.113.128/25"},
        format="json",
    )  # fmt: skip
    assert rule.status_code == 201, rule.content
    fip = client.post("/api/v1/floating-ips", {"network": "public", "port": port}, format="json")
    assert fip.status_code == 201, fip.content
    door = SshDoor(address=fip.json()["address"], floating_ip=fip.json()["id"],
                   rule=rule.json()["id"])  # fmt: skip
    if wait:
        wait_for(
            lambda: client.get(f"/api/v1/floating-ips/{door.floating_ip}").json()["status"]
            == "active",
            30, "the floating IP to be active",
        )  # fmt: skip
    return door


def tenant_keys(directory: Path) -> tuple[Path, Path]:
    """A tenant's SSH key pair (OpenSSH format, for the test's client) and the same private
    key in dropbear's format (for guests' dbclient, when one guest logs into another)."""
    private = keygen(directory / "tenant")
    dropbear = directory / "tenant.dropbear"
    subprocess.run(
        ["dropbearconvert", "openssh", "dropbear", str(private), str(dropbear)],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    return private, dropbear


def outside_ssh(
    lab: OvnLab,
    address: str,
    host_key: GuestHostKey,
    private_key: Path,
    command: str,
    *,
    stdin: bytes | None = None,
    timeout: float = 60,
    connect_timeout: int = 5,
    user: str = "root",
) -> subprocess.CompletedProcess[bytes]:
    """`command` run as `user` on the guest at `address`, logging in with OpenSSH from the
    lab's outside namespace (a client on the provider network), the guest's host key pinned
    (StrictHostKeyChecking): nothing else is accepted. Connection failures are retried
    until `timeout` (an SSH server still starting, a flow being set up); the last attempt's
    result is returned either way."""
    known = private_key.parent / f"known-{address}"
    known.write_text(f"{address} {host_key.key_type} {host_key.key_base64}\n")
    argv = [
        "ip", "netns", "exec", lab.outside_netns, "ssh", "-i", str(private_key),
        "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "ServerAliveInterval=5", f"{user}@{address}", command,
    ]  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout + 30,
                              check=False)  # fmt: skip
        if done.returncode != 255 or time.monotonic() > deadline:
            return done
        time.sleep(1)
