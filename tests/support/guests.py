"""Booting the project's test image on the real lane, through the driver only: the cached image
is stream-uploaded as a base volume, each guest gets a qcow2 overlay on it and a NoCloud seed
uploaded as a raw volume (built by tests.support.hypervisor_lab), a NIC on an isolated network
and its serial console in a file."""

from __future__ import annotations

import hashlib
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

from hypervisor.base import DiskSpec, DomainSpec, NicSpec, StorageVolumeInfo, StorageVolumeSpec
from hypervisor.libvirt import LibvirtHypervisor
from tests.support import hypervisor_lab as lab
from tests.support.hypervisor_lanes import Resources

USER_DATA = """#cloud-config
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDriver+contract+test+key+only driver@andromede
"""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def random_mac() -> str:
    return "52:54:00:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def upload_file(hv: LibvirtHypervisor, spec: StorageVolumeSpec, path: Path) -> StorageVolumeInfo:
    """Create the volume and stream the file into it (byte for byte)."""
    hv.create_storage_volume(spec)
    with path.open("rb") as source:
        hv.upload_storage_volume(spec.pool, spec.name, source, path.stat().st_size)
    return hv.storage_volume_info(spec.pool, spec.name)


@dataclass(frozen=True)
class Guest:
    name: str
    instance_id: str
    ip: str
    mac: str
    console_log: Path


def create_guest(
    hv: LibvirtHypervisor,
    res: Resources,
    *,
    image_pool: str,
    base_volume: str,
    base_capacity: int,
    network: str,
    ip: str,
    workdir: Path,
) -> Guest:
    """Define (not start) a TCG guest of the test image: overlay + seed volumes in a new
    pool, a NIC on `network` with the static address `ip`/24."""
    pool = res.pool()
    name = res.domain()
    instance_id = f"i-{name[-20:]}"
    mac = random_mac()
    overlay = res.volume(
        StorageVolumeSpec(
            pool,
            f"{name}-root.qcow2",
            base_capacity,
            backing_pool=image_pool,
            backing_volume=base_volume,
        )
    )
    seed_path = lab.build_seed_iso(
        workdir / f"{name}-seed.iso", instance_id, "guest", mac, f"{ip}/24", USER_DATA
    )
    seed = f"{name}-seed.iso"
    res.volumes.append((pool, seed))
    upload_file(
        hv, StorageVolumeSpec(pool, seed, seed_path.stat().st_size, format="raw"), seed_path
    )
    console_log = res.lane.root / pool / f"{name}-console.log"
    hv.define_domain(
        DomainSpec(
            name=name,
            title="a test guest",
            tenant_id="tenant-contract",
            instance_id=instance_id,
            vcpus=1,
            memory_mb=128,
            disks=(
                DiskSpec(pool=pool, volume=overlay, target="vda"),
                DiskSpec(
                    pool=pool, volume=seed, target="sda", device="cdrom", bus="scsi", format="raw"
                ),
            ),
            nics=(NicSpec(network=network, mac=mac),),
            domain_type="qemu",
            console_log=str(console_log),
        )
    )
    return Guest(name=name, instance_id=instance_id, ip=ip, mac=mac, console_log=console_log)


def wait_for_console(
    hv: LibvirtHypervisor, name: str, pattern: re.Pattern[str], count: int = 1, timeout: float = 30
) -> str:
    """Poll the console through the driver until `pattern` matched `count` times; the text."""
    deadline = time.monotonic() + timeout
    while True:
        text = hv.console_output(name)
        if len(pattern.findall(text)) >= count:
            return text
        if time.monotonic() >= deadline:
            tail = text[-2000:]
            raise AssertionError(
                f"{pattern.pattern!r} not seen {count}x within {timeout:g} s; console:\n{tail}"
            )
        time.sleep(0.05)
