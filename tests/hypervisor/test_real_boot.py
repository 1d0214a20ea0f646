"""Real guests on the real libvirtd (the hypervisor lane), driven through `LibvirtHypervisor`
only: the project's test image boots from a qcow2 overlay, reads its NoCloud seed, configures
its network and says so on its serial console, which the driver reads back. libvirt's test
driver runs no guest code, so these tests exist on the real lane alone."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from hypervisor.base import (
    DiskSpec,
    DomainSpec,
    NetworkSpec,
    NicSpec,
    PowerState,
    StaticLease,
    StorageVolumeSpec,
)
from hypervisor.libvirt import LibvirtHypervisor
from tests.support import hypervisor_lab as lab
from tests.support.guests import (
    USER_DATA,
    create_guest,
    random_mac,
    sha256_file,
    upload_file,
    wait_for_console,
)
from tests.support.hypervisor_lanes import Resources

pytestmark = pytest.mark.hypervisor

#: A whole ready line: the console is read while the guest writes it, and a line cut short
#: ("ANDROMEDE-READY instan") must not count (seen under load).
READY_ANY = re.compile(r"^ANDROMEDE-READY [^\r\n]*\r?\n", re.M)


def test_an_overlay_on_the_cached_image_boots_and_reports_ready_within_30s(
    real_hypervisor: LibvirtHypervisor, real_res: Resources, tmp_path: Path
) -> None:
    hv, res = real_hypervisor, real_res
    image = lab.ensure_test_image()
    image_sha = sha256_file(image)

    # Pools: a base-image cache and instance disks (directory pools under this run's dir).
    images, disks = res.pool(), res.pool()

    # The cached image, streamed into a base volume, byte for byte (checked on the way back).
    base = f"base-{image_sha[:16]}.qcow2"
    res.volumes.append((images, base))
    base_info = upload_file(hv, StorageVolumeSpec(images, base, image.stat().st_size), image)
    downloaded = bytearray()
    hv.download_storage_volume(images, base, downloaded.extend)
    assert len(downloaded) == image.stat().st_size
    assert hashlib.sha256(downloaded).hexdigest() == image_sha

    # The instance: a qcow2 overlay on the base, grown to 64 MiB, and its NoCloud seed.
    name = res.domain()
    instance_id = f"i-{name[-24:]}"
    ip, mac = "198.51.100.140", random_mac()
    root = res.volume(
        StorageVolumeSpec(disks, f"{name}-root", 64 << 20, backing_pool=images, backing_volume=base)
    )
    assert base_info.capacity_bytes <= 64 << 20
    seed_file = lab.build_seed_iso(
        tmp_path / "seed.iso", instance_id, "boot-test", mac, f"{ip}/24", USER_DATA
    )
    seed = f"{name}-seed"
    res.volumes.append((disks, seed))
    upload_file(
        hv, StorageVolumeSpec(disks, seed, seed_file.stat().st_size, format="raw"), seed_file
    )

    # An isolated network on a documentation subnet, with the guest's address as a lease.
    network = res.network(
        NetworkSpec(
            name=res.name("net"),
            bridge=res.bridge(),
            gateway_cidr="198.51.100.129/25",
            dhcp_start="198.51.100.200",
            dhcp_end="198.51.100.250",
            leases=(StaticLease(mac=mac, ip=ip, hostname="boot-test"),),
        )
    )

    console_log = res.lane.root / disks / f"{name}-console.log"
    hv.define_domain(
        DomainSpec(
            name=name,
            title="boot test",
            tenant_id="tenant-boot",
            instance_id=instance_id,
            vcpus=1,
            memory_mb=128,
            disks=(
                DiskSpec(pool=disks, volume=root, target="vda"),
                DiskSpec(pool=disks, volume=seed, target="sda", device="cdrom", format="raw"),
            ),
            nics=(NicSpec(network=network, mac=mac),),
            domain_type="qemu",
            console_log=str(console_log),
        )
    )
    started = time.monotonic()
    hv.start_domain(name)
    text = wait_for_console(hv, name, lab.READY_RE, timeout=30)
    elapsed = time.monotonic() - started
    print(f"\nboot to ANDROMEDE-READY through the driver: {elapsed:.2f} s")

    ready = lab.READY_RE.search(text)
    assert ready is not None
    assert (ready["id"], ready["ip"]) == (instance_id, ip)
    assert elapsed < 30
    assert "ANDROMEDE-SSHKEYS count=1" in text
    assert "ANDROMEDE-ERROR" not in text, text
    assert lab.ping(ip), f"the guest at {ip} does not answer on the isolated bridge"
    info = hv.domain_info(name)
    assert (info.power_state, info.instance_id, info.tenant_id) == (
        PowerState.RUNNING,
        instance_id,
        "tenant-boot",
    )


def test_a_real_guest_shows_its_console_reboots_and_powers_off_on_acpi(
    real_hypervisor: LibvirtHypervisor, real_res: Resources, tmp_path: Path
) -> None:
    hv, res = real_hypervisor, real_res
    image = lab.ensure_test_image()
    images = res.pool()
    base = res.name("base")
    res.volumes.append((images, base))
    base_info = upload_file(hv, StorageVolumeSpec(images, base, image.stat().st_size), image)
    network = res.network(NetworkSpec(res.name("net"), res.bridge(), "198.51.100.1/24", None, None))
    guest = create_guest(
        hv,
        res,
        image_pool=images,
        base_volume=base,
        base_capacity=base_info.capacity_bytes,
        network=network,
        ip="198.51.100.20",
        workdir=tmp_path,
    )
    ready_line = f"ANDROMEDE-READY instance-id={guest.instance_id} ip={guest.ip}"

    hv.start_domain(guest.name)
    text = wait_for_console(hv, guest.name, READY_ANY, count=1)
    assert ready_line in text

    # console_output returns the tail: at most max_bytes, the end of the log.
    tail = hv.console_output(guest.name, max_bytes=40)
    assert 0 < len(tail.encode()) <= 40
    assert hv.console_output(guest.name).endswith(tail)

    # Soft reboot (ACPI): the guest powers off and libvirt starts it again, in the same domain.
    hv.reboot_domain(guest.name)
    text = wait_for_console(hv, guest.name, READY_ANY, count=2, timeout=60)
    assert text.count(ready_line) == 2
    assert text.count("ANDROMEDE-POWEROFF") == 1

    # Hard reset, then at once a graceful shutdown: while the guest boots again nothing
    # listens to the power button, so the driver presses it again until acpid answers.
    hv.reboot_domain(guest.name, hard=True)
    started = time.monotonic()
    # 120 s: a bound against a hang, not a target (a reset, a boot and an ACPI shutdown took
    # over 60 s under TCG on a machine loaded by both test lanes and more).
    assert hv.shutdown_domain(guest.name, timeout_seconds=120) is True
    print(f"\nreset, boot and ACPI shutdown of the test image: {time.monotonic() - started:.2f} s")
    text = hv.console_output(guest.name)
    assert text.count("ANDROMEDE-USERDATA") == 3  # the reset booted it a third time
    assert text.count("ANDROMEDE-POWEROFF") == 2  # and it powered itself off
    assert hv.domain_info(guest.name).power_state == PowerState.SHUTOFF
    assert hv.shutdown_domain(guest.name, timeout_seconds=1) is True  # already off
