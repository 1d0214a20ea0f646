"""The real hypervisor lane's host: this machine's libvirtd onboarded under a private name,
storage in a temporary directory, and everything the run made removed afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import libvirt

from hosts.models import Host
from hosts.services import onboarding, zones
from iaas.audit import Actor
from tests.support import hypervisor_lab

URI = "qemu:///system"


def _network_names() -> set[str]:
    conn = libvirt.open(URI)
    try:
        return {net.name() for net in conn.listAllNetworks()}
    finally:
        conn.close()


def _remove_leftovers(host_name: str, networks_before: set[str]) -> None:
    """Domains whose disks live in this host's pools (even of a test that failed before its
    delete), the tenant networks this run created, and this host's pools."""
    conn = libvirt.open(URI)
    try:
        for domain in conn.listAllDomains():
            if f"andromede-{host_name}-" in domain.XMLDesc():
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
        for net in conn.listAllNetworks():
            if net.name().startswith("andr-t-") and net.name() not in networks_before:
                if net.isActive():
                    net.destroy()
                net.undefine()
        for pool in conn.listAllStoragePools():
            if pool.name().startswith(f"andromede-{host_name}-"):
                for volume in pool.listAllVolumes():
                    volume.delete()
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
    finally:
        conn.close()


@contextmanager
def onboarded_local_host(settings: Any, host_name: str, zone_name: str) -> Iterator[Host]:
    """This machine's libvirtd as host `host_name` (qemu/TCG) in a French zone; the image
    store and pools in a temporary directory; cleaned up on exit, whatever happened."""
    hypervisor_lab.ensure_libvirtd()
    networks_before = _network_names()
    root = Path(tempfile.mkdtemp(prefix=f"andromede-{host_name}-", dir="/var/tmp"))
    root.chmod(0o711)  # guests run as libvirt-qemu: their disks' path must be traversable
    settings.IMAGE_STORE_DIR = root / "image-store"
    settings.IMAGE_STORE_ZONE = zone_name  # the default image store lies in this zone
    settings.INSTANCE_BOOT_TIMEOUT_SECONDS = 60
    settings.INSTANCE_STOP_TIMEOUT_SECONDS = 30
    # Never the subnets of `make run`'s tenant networks, which may live on this libvirtd.
    settings.TENANT_NETWORK_SUPERNETS = ["198.51.100.128/25"]
    system = Actor.system("e2e")
    try:
        zone = zones.zone_create(
            actor=system, region="fr-e2e", name=zone_name, site="lab", city="Paris",
            country="FR", jurisdiction="FR",
        )  # fmt: skip
        yield onboarding.host_onboard(
            actor=system,
            registration=onboarding.HostRegistration(
                name=host_name, zone=zone, libvirt_uri=URI, storage_root=str(root),
                domain_type="qemu",
            ),
        )  # fmt: skip
    finally:
        _remove_leftovers(host_name, networks_before)
        shutil.rmtree(root, ignore_errors=True)
