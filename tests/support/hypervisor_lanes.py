"""The hypervisor driver lanes' helpers (not fixtures; tests/hypervisor/conftest.py has those):
what a lane is, the names and cleanup of what one test creates, and the sweep of a run's
leftovers on a libvirt connection."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from hypervisor.base import NetworkSpec, PoolSpec, StorageVolumeSpec
from hypervisor.libvirt import LibvirtHypervisor


@dataclass(frozen=True)
class Lane:
    name: str  # test | real
    uri: str
    real: bool
    root: Path  # where this run's pools live (fake paths on the test lane)
    prefix: str  # of every name this run creates
    domain_type: str  # what the lane's guests are: test (fake) or qemu (TCG)


@dataclass(frozen=True)
class RealHost:
    root: Path
    prefix: str


def run_token() -> str:
    """A short random token naming one run (or one test-lane test) uniquely."""
    return secrets.token_hex(3)


def sweep(uri: str, prefix: str) -> None:
    """Remove every domain, network and pool whose name starts with `prefix` (a safety net
    behind each test's own cleanup; pools' directories go with the run's directory)."""
    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(prefix):
                with contextlib.suppress(libvirt.libvirtError):
                    if dom.isActive():
                        dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefine()
        for network in conn.listAllNetworks(0):
            if network.name().startswith(prefix):
                with contextlib.suppress(libvirt.libvirtError):
                    if network.isActive():
                        network.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    network.undefine()
        for pool in conn.listAllStoragePools(0):
            if pool.name().startswith(prefix):
                remove_pool(pool)
    finally:
        conn.close()


def remove_pool(pool: libvirt.virStoragePool) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        if pool.isActive():
            pool.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        pool.undefine()


@dataclass
class Resources:
    """Unique names for one test, and the cleanup of what it created (through the driver's
    idempotent deletes; pools through libvirt, the interface has no pool deletion)."""

    hv: LibvirtHypervisor
    lane: Lane
    domains: list[str] = field(default_factory=list)
    volumes: list[tuple[str, str]] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # undefined last (rbd pools need them)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def name(self, kind: str) -> str:
        return f"{self.lane.prefix}-{kind}{next(self._counter)}-{os.getpid() % 1000}"

    def domain(self, name: str | None = None) -> str:
        name = name or self.name("dom")
        self.domains.append(name)
        return name

    def pool(self) -> str:
        name = self.name("pool")
        self.pools.append(name)
        self.hv.ensure_pool(PoolSpec(name, str(self.lane.root / name)))
        return name

    def volume(self, spec: StorageVolumeSpec) -> str:
        self.volumes.append((spec.pool, spec.name))
        self.hv.create_storage_volume(spec)
        return spec.name

    def network(self, spec: NetworkSpec) -> str:
        self.networks.append(spec.name)
        self.hv.ensure_network(spec)
        return spec.name

    def bridge(self) -> str:
        return f"ab{secrets.token_hex(4)}"  # at most 15 characters

    def cleanup(self) -> None:
        for name in self.domains:
            with contextlib.suppress(Exception):
                self.hv.undefine_domain(name)
        for pool, name in self.volumes:
            with contextlib.suppress(Exception):
                self.hv.delete_storage_volume(pool, name, wipe=False)
        for name in self.networks:
            with contextlib.suppress(Exception):
                self.hv.delete_network(name)
        if self.pools:
            conn = libvirt.open(self.lane.uri)
            try:
                for name in self.pools:
                    with contextlib.suppress(libvirt.libvirtError):
                        remove_pool(conn.storagePoolLookupByName(name))
            finally:
                conn.close()
        for uuid in self.secrets:
            with contextlib.suppress(Exception):
                self.hv.undefine_secret(uuid)
        if self.lane.real:
            for name in self.pools:
                shutil.rmtree(self.lane.root / name, ignore_errors=True)
