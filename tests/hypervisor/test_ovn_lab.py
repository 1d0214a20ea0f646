"""Guests on OVN for real, in the session's OVN lab (tests/support/ovn_lab.py): the project's
test image booted through `LibvirtHypervisor` with NICs on ``br-int`` as OVN logical switch
ports (`NicSpec.on_ovs`), OVN's DHCP giving them their addresses, a logical router with SNAT
and floating IPs on the provider network, and an outside client reaching each guest there.

The NB objects are made with ``ovn-nbctl`` here (the control plane's own NB writer is built
elsewhere); the test image cannot yet send anything on request (no probe, no SSH), so what
the guests do is what their /init does: ask for DHCP, say READY with the address it got.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from hypervisor.base import DiskSpec, DomainSpec, NicSpec, StorageVolumeSpec, tap_name
from hypervisor.libvirt import LibvirtHypervisor
from tests.support import hypervisor_lab
from tests.support.fault_lab import wait_for
from tests.support.guests import USER_DATA, random_mac, upload_file, wait_for_console
from tests.support.hypervisor_lanes import Lane, Resources, run_token
from tests.support.ovn_lab import OvnLab

pytestmark = pytest.mark.hypervisor

SUBNET, PREFIX = "198.51.100.0/24", 24
ROUTER_IP, ROUTER_MAC = "198.51.100.1", "0a:00:00:00:01:fe"
GATEWAY_IP, GATEWAY_MAC = "203.0.113.130", "0a:00:00:00:02:01"
OUTSIDE_IP = "203.0.113.129"
MTU = 1442  # Geneve's overhead under a 1500-byte underlay


@dataclass(frozen=True)
class Port:
    id: str
    mac: str
    ip: str
    floating_ip: str | None = None


@dataclass
class Tenant:
    """What one test made in the lab's NB database (the lab lives for the whole session)."""

    switch: str
    router: str
    dhcp: str
    ports: list[Port]


def _add_port(lab: OvnLab, tenant: Tenant, port: Port) -> None:
    address = f"{port.mac} {port.ip}"
    lab.nbctl(
        "lsp-add", tenant.switch, port.id,
        "--", "lsp-set-addresses", port.id, address,
        "--", "lsp-set-port-security", port.id, address,
        "--", "lsp-set-dhcpv4-options", port.id, tenant.dhcp,
    )  # fmt: skip
    tenant.ports.append(port)


def _tenant_network(lab: OvnLab, ports: list[Port]) -> Tenant:
    """A switch with DHCP, a router with SNAT to the provider network, a floating IP for
    each port that has one."""
    token = run_token()
    switch, public, router = f"ls-{token}", f"ls-public-{token}", f"lr-{token}"
    lab.nbctl("ls-add", switch)
    dhcp = lab.nbctl(
        "create", "DHCP_Options", f"cidr={SUBNET}",
        f'options="lease_time"="3600" "router"="{ROUTER_IP}" "server_id"="{ROUTER_IP}" '
        f'"server_mac"="{ROUTER_MAC}" "mtu"="{MTU}"',
    ).strip()  # fmt: skip
    tenant = Tenant(switch=switch, router=router, dhcp=dhcp, ports=[])
    for port in ports:
        _add_port(lab, tenant, port)
    lab.nbctl(
        "ls-add", public,
        "--", "lsp-add", public, f"ln-{token}",
        "--", "lsp-set-type", f"ln-{token}", "localnet",
        "--", "lsp-set-addresses", f"ln-{token}", "unknown",
        "--", "lsp-set-options", f"ln-{token}", f"network_name={lab.physnet}",
        "--", "lr-add", router,
        "--", "lrp-add", router, f"lrp-{token}", ROUTER_MAC, f"{ROUTER_IP}/{PREFIX}",
        "--", "lsp-add", switch, f"rp-{token}",
        "--", "lsp-set-type", f"rp-{token}", "router",
        "--", "lsp-set-addresses", f"rp-{token}", "router",
        "--", "lsp-set-options", f"rp-{token}", f"router-port=lrp-{token}",
        "--", "lrp-add", router, f"lrp-gw-{token}", GATEWAY_MAC, f"{GATEWAY_IP}/25",
        "--", "lsp-add", public, f"rp-gw-{token}",
        "--", "lsp-set-type", f"rp-gw-{token}", "router",
        "--", "lsp-set-addresses", f"rp-gw-{token}", "router",
        "--", "lsp-set-options", f"rp-gw-{token}", f"router-port=lrp-gw-{token}",
    )  # fmt: skip
    lab.nbctl("lrp-set-gateway-chassis", f"lrp-gw-{token}", lab.chassis, "10")
    lab.nbctl("lr-route-add", router, "0.0.0.0/0", OUTSIDE_IP)
    lab.nbctl("lr-nat-add", router, "snat", GATEWAY_IP, SUBNET)
    for port in ports:
        if port.floating_ip:
            lab.nbctl("lr-nat-add", router, "dnat_and_snat", port.floating_ip, port.ip)
    lab.nbctl("--wait=hv", "sync")
    return tenant


def _remove(lab: OvnLab, tenant: Tenant) -> None:
    token = tenant.switch.removeprefix("ls-")
    for command in (
        ("--if-exists", "lr-del", tenant.router),
        ("--if-exists", "ls-del", tenant.switch),
        ("--if-exists", "ls-del", f"ls-public-{token}"),
        ("dhcp-options-del", tenant.dhcp),
    ):
        with contextlib.suppress(AssertionError):
            lab.nbctl(*command)


@pytest.fixture
def lab_driver(ovn_lab: OvnLab) -> Iterator[tuple[LibvirtHypervisor, Resources]]:
    lane = Lane("ovn-lab", ovn_lab.libvirt_uri, True, ovn_lab.storage_root, "andovn", "qemu")
    hv = LibvirtHypervisor(ovn_lab.libvirt_uri, call_timeout=60)
    res = Resources(hv, lane)
    try:
        yield hv, res
    finally:
        res.cleanup()
        hv.close()


def _define_guest(
    hv: LibvirtHypervisor,
    res: Resources,
    lab: OvnLab,
    port: Port,
    base: tuple[str, str, int],
    workdir: Path,
) -> str:
    """A TCG guest of the test image whose one NIC is the OVN port `port`, asking DHCP."""
    images, base_volume, capacity = base
    pool, name = res.pool(), res.domain()
    overlay = res.volume(
        StorageVolumeSpec(
            pool, f"{name}-root", capacity, backing_pool=images, backing_volume=base_volume
        )
    )
    seed_file = hypervisor_lab.build_seed_iso(
        workdir / f"{name}.iso", f"i-{port.id[:8]}", "ovn-guest", port.mac, None, USER_DATA
    )
    seed = f"{name}-seed"
    res.volumes.append((pool, seed))
    upload_file(
        hv, StorageVolumeSpec(pool, seed, seed_file.stat().st_size, format="raw"), seed_file
    )
    hv.define_domain(
        DomainSpec(
            name=name,
            title="a guest on OVN",
            tenant_id="tenant-ovn",
            instance_id=f"i-{port.id[:8]}",
            vcpus=1,
            memory_mb=128,
            disks=(
                DiskSpec(pool=pool, volume=overlay, target="vda"),
                DiskSpec(pool=pool, volume=seed, target="sda", device="cdrom", format="raw"),
            ),
            nics=(_nic(lab, port),),
            domain_type="qemu",
            console_log=str(res.lane.root / pool / f"{name}-console.log"),
        )
    )
    return name


def _nic(lab: OvnLab, port: Port) -> NicSpec:
    # The lab's datapath is userspace: the guest's checksum offload must be off.
    return NicSpec.on_ovs(
        bridge=lab.integration_bridge, interface_id=port.id, mac=port.mac, mtu=MTU, csum_off=True
    )


def _tap_links(lab: OvnLab) -> set[str]:
    listing = lab.run("ip", "-o", "link", "show")
    return {line.split(":")[1].strip().split("@")[0] for line in listing.splitlines()}


def test_guests_on_an_ovn_switch_get_their_addresses_and_answer_through_floating_ips(
    ovn_lab: OvnLab, lab_driver: tuple[LibvirtHypervisor, Resources], tmp_path: Path
) -> None:
    lab, (hv, res) = ovn_lab, lab_driver
    print(f"\nOVN lab startup: {lab.startup_seconds:.2f} s")
    assert lab.startup_seconds is not None
    assert lab.startup_seconds < 30
    image = hypervisor_lab.ensure_test_image()
    images = res.pool()
    base = res.name("base")
    res.volumes.append((images, base))
    info = upload_file(hv, StorageVolumeSpec(images, base, image.stat().st_size), image)

    a = Port(str(uuid.uuid4()), random_mac(), "198.51.100.11", "203.0.113.141")
    b = Port(str(uuid.uuid4()), random_mac(), "198.51.100.12", "203.0.113.142")
    tenant = _tenant_network(lab, [a, b])
    try:
        names = {}
        for port in (a, b):
            names[port] = _define_guest(
                hv, res, lab, port, (images, base, info.capacity_bytes), tmp_path
            )
        up_after = {}
        for port in (a, b):
            started = time.monotonic()
            hv.start_domain(names[port])
            wait_for(partial(lab.lsp_up, port.id), 30, f"port {port.id} up", every=0.05)
            up_after[port] = time.monotonic() - started
        print("domain start -> lsp up: " + ", ".join(f"{s:.2f} s" for s in up_after.values()))

        # Each guest got the address our "IPAM" gave its port, from OVN's DHCP.
        for port in (a, b):
            text = wait_for_console(hv, names[port], hypervisor_lab.READY_RE, timeout=60)
            ready = hypervisor_lab.READY_RE.search(text)
            assert ready is not None
            assert ready["ip"] == port.ip, text
            assert "ANDROMEDE-ERROR" not in text, text

        # The outside client reaches each guest through its floating IP (router, NAT).
        for port in (a, b):
            assert port.floating_ip is not None
            assert lab.ping_from_outside(port.floating_ip), f"{port.floating_ip} is silent"
        # An address that no port has answers nobody.
        assert not lab.ping_from_outside("203.0.113.143", attempts=2)

        # The guests' taps exist in the lab only, without IPv6; the lab's stack dropped
        # what the guests sent it (their DHCP broadcasts, at least).
        taps = {tap_name(port.id) for port in (a, b)}
        assert taps <= _tap_links(lab)
        assert not [tap for tap in taps if Path(f"/sys/class/net/{tap}").exists()]
        for tap in taps:
            assert lab.run("ip", "-6", "-o", "addr", "show", "dev", tap).strip() == ""
        assert lab.guest_frames_dropped() > 0

        # A NIC attached live to the running guest is bound by OVN; detached, it is gone.
        c = Port(str(uuid.uuid4()), random_mac(), "198.51.100.13")
        _add_port(lab, tenant, c)
        started = time.monotonic()
        hv.attach_nic(names[a], _nic(lab, c))
        hv.attach_nic(names[a], _nic(lab, c))  # already there: no-op
        wait_for(lambda: lab.lsp_up(c.id), 30, "the hot-plugged port up", every=0.05)
        print(f"live attach -> lsp up: {time.monotonic() - started:.2f} s")
        assert tap_name(c.id) in _tap_links(lab)
        started = time.monotonic()
        hv.detach_nic(names[a], c.mac, timeout_seconds=30)
        print(f"live detach released by the guest: {time.monotonic() - started:.2f} s")
        assert tap_name(c.id) not in _tap_links(lab)
        wait_for(lambda: not lab.lsp_up(c.id), 10, "the unplugged port down", every=0.05)
        assert lab.ping_from_outside(str(a.floating_ip)), "guest A lost its first NIC"

        rss = lab.daemon_rss_kib()
        print("lab daemons RSS (MiB): " + ", ".join(f"{k} {v / 1024:.1f}" for k, v in rss.items()))
        print(f"total {sum(rss.values()) / 1024:.1f} MiB")
    finally:
        _remove(lab, tenant)
