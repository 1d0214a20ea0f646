"""Boot the test image on the real libvirtd and time it, then remove everything.

    .venv/bin/python tests/support/boot_smoke.py [--runs N] [--dhcp] [--seed-bus ide|scsi]
                                                 [--shutdown]

Each run: a qcow2 overlay on the cached test image, a NoCloud seed ISO (instance id
``smoke-<run>``, static 198.51.100.140/25 or DHCP), a TCG domain with a virtio disk, the seed
CD-ROM, a virtio NIC on an isolated network (198.51.100.128/25) and its serial console in a file;
start, wait (60 s at most) for ``ANDROMEDE-READY instance-id=smoke-<run> ip=<expected>``,
print the seconds from start to that line, ping the guest from the host (over the isolated
bridge), then destroy and undefine. ``--shutdown`` asks the
guest to power off through ACPI instead and times that too. Needs root.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import libvirt

from tests.support import hypervisor_lab as lab

NETWORK = "andromede-smoke"
CIDR = "198.51.100.128/25"
STATIC_IP = "198.51.100.140"
USER_DATA = """#cloud-config
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBoot+smoke+test+key+only smoke@andromede
"""


def boot_once(
    conn: libvirt.virConnect, base: Path, run: int, workdir: Path, args: argparse.Namespace
) -> dict[str, float]:
    name = f"andromede-smoke-{os.getpid()}-{run}"
    instance_id = f"smoke-{run}"
    mac = "52:54:00:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))
    overlay = workdir / f"{name}.qcow2"
    seed = workdir / f"{name}-seed.iso"
    console = workdir / f"{name}-console.log"
    timings: dict[str, float] = {}

    t = time.monotonic()
    lab.create_overlay(base, overlay)
    lab.build_seed_iso(
        seed,
        instance_id,
        f"smoke{run}",
        mac,
        None if args.dhcp else f"{STATIC_IP}/24",
        USER_DATA,
    )
    timings["prepare"] = time.monotonic() - t
    xml = lab.guest_domain_xml(name, overlay, seed, NETWORK, mac, console, seed_bus=args.seed_bus)
    dom = None
    try:
        t = time.monotonic()
        dom = conn.defineXML(xml)
        timings["define"] = time.monotonic() - t
        t = time.monotonic()
        dom.create()
        timings["start"] = time.monotonic() - t
        ready = lab.wait_for_ready(console, timeout=60)
        timings["boot_to_ready"] = time.monotonic() - t
        text = console.read_text(errors="replace")
        want_ip = STATIC_IP if not args.dhcp else None
        if ready["id"] != instance_id or (want_ip and ready["ip"] != want_ip):
            raise AssertionError(f"unexpected ready line: {ready.group(0)!r}")
        if ready["ip"] == "none":
            raise AssertionError(f"no address: {ready.group(0)!r}")
        if "ANDROMEDE-SSHKEYS count=1" not in text or "ANDROMEDE-ERROR" in text:
            raise AssertionError(f"console:\n{text}")
        print(f"run {run}: {ready.group(0)}", flush=True)
        t = time.monotonic()
        if not lab.ping(ready["ip"]):
            raise AssertionError(f"{ready['ip']} does not answer ping from the host")
        timings["ping"] = time.monotonic() - t
        if args.shutdown:
            t = time.monotonic()
            dom.shutdown()  # ACPI power button
            deadline = t + 30
            while dom.isActive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if dom.isActive():
                raise AssertionError("the guest ignored the ACPI power button for 30 s")
            timings["acpi_poweroff"] = time.monotonic() - t
    finally:
        if dom is not None:
            t = time.monotonic()
            if dom.isActive():
                dom.destroy()
            timings["destroy"] = time.monotonic() - t
            dom.undefine()
        for path in (overlay, seed):
            path.unlink(missing_ok=True)
        if args.keep_console:
            print(console.read_text(errors="replace"))
        console.unlink(missing_ok=True)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dhcp", action="store_true", help="DHCP instead of 198.51.100.140/25")
    parser.add_argument("--seed-bus", choices=("ide", "scsi"), default="ide")
    parser.add_argument("--shutdown", action="store_true", help="also time an ACPI poweroff")
    parser.add_argument("--keep-console", action="store_true", help="print the console")
    args = parser.parse_args()

    t = time.monotonic()
    lab.ensure_libvirtd()
    print(f"libvirtd ready in {time.monotonic() - t:.2f} s", flush=True)
    t = time.monotonic()
    base = lab.ensure_test_image()
    print(f"test image {base} ready in {time.monotonic() - t:.2f} s", flush=True)

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors raise; no stderr
    conn = libvirt.open(lab.URI)
    workdir = Path(tempfile.mkdtemp(prefix="smoke-", dir=lab.ROOT / "var"))
    workdir.chmod(0o711)  # guests run as libvirt-qemu: their disks' path must be traversable
    failed = 0
    try:
        lab.remove_network(conn, NETWORK)  # a leftover of an interrupted run
        lab.isolated_network(conn, NETWORK, CIDR)
        for run in range(1, args.runs + 1):
            try:
                timings = boot_once(conn, base, run, workdir, args)
            except (AssertionError, TimeoutError, libvirt.libvirtError) as exc:
                failed += 1
                print(f"run {run}: FAILED: {exc}", flush=True)
                continue
            print(
                f"run {run}: boot-to-ready {timings['boot_to_ready']:.2f} s  ("
                + ", ".join(f"{k} {v:.3f}" for k, v in timings.items() if k != "boot_to_ready")
                + ")",
                flush=True,
            )
    finally:
        lab.remove_network(conn, NETWORK)
        conn.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
