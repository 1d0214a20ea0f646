"""Fixtures of the hypervisor driver tests: one contract suite, two lanes.

- ``test``: libvirt's in-process fake, ``test:///default``. Connections to it share one state
  while at least one stays open; the last one closing resets it (each test's driver is closed
  at its end, so tests start from libvirt's default fake host).
- ``real``: the real libvirtd with QEMU on this machine (``qemu:///system``), started by
  `tests.support.hypervisor_lab.ensure_libvirtd` (marker ``hypervisor``). If it cannot be
  started the tests *error*: this lane must run in CI, it is never skipped.

Everything the real lane creates lives in a temporary directory under /var/tmp (directory
pools there, never libvirt's default pool) and carries this run's unique prefix; each test
removes what it made, and the session sweeps anything left by prefix, even after failures.
Guest networks use only 198.51.100.0/24 and 203.0.113.0/24, isolated.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from hypervisor.base import NetworkSpec, PoolSpec, StorageVolumeSpec
from hypervisor.libvirt import LibvirtHypervisor
from tests.support import hypervisor_lab as lab

TEST_URI = "test:///default"
REAL_URI = lab.URI
#: Generous: the bound is exercised by its own test; here it only stops a hung run.
CALL_TIMEOUT = 60.0


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


def _run_token() -> str:
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


@pytest.fixture(scope="session")
def real_host() -> Iterator[RealHost]:
    """libvirtd running (installed and started if needed: errors, never skips) and a
    directory for this run's pools."""
    lab.ensure_libvirtd()
    prefix = f"andt{_run_token()}"
    root = Path(tempfile.mkdtemp(prefix=f"andromede-drivers-{prefix}-", dir="/var/tmp"))
    try:
        yield RealHost(root=root, prefix=prefix)
    finally:
        sweep(REAL_URI, prefix)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(
    params=[
        pytest.param("test", id="test"),
        pytest.param("real", id="real", marks=pytest.mark.hypervisor),
    ]
)
def lane(request: pytest.FixtureRequest) -> Lane:
    if request.param == "real":
        host: RealHost = request.getfixturevalue("real_host")
        return Lane("real", REAL_URI, True, host.root, host.prefix, "qemu")
    token = _run_token()
    return Lane("test", TEST_URI, False, Path(f"/andromede-fake-{token}"), f"andt{token}", "test")


@pytest.fixture
def hypervisor(lane: Lane) -> Iterator[LibvirtHypervisor]:
    hv = LibvirtHypervisor(lane.uri, call_timeout=CALL_TIMEOUT)
    try:
        yield hv
    finally:
        hv.close()


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
        if self.lane.real:
            for name in self.pools:
                shutil.rmtree(self.lane.root / name, ignore_errors=True)


@pytest.fixture
def res(hypervisor: LibvirtHypervisor, lane: Lane) -> Iterator[Resources]:
    resources = Resources(hypervisor, lane)
    try:
        yield resources
    finally:
        resources.cleanup()


# --- The real lane alone (tests that boot the test image: libvirt's fake runs no guest) -------


@pytest.fixture
def real_lane(real_host: RealHost) -> Lane:
    return Lane("real", REAL_URI, True, real_host.root, real_host.prefix, "qemu")


@pytest.fixture
def real_hypervisor(real_lane: Lane) -> Iterator[LibvirtHypervisor]:
    hv = LibvirtHypervisor(real_lane.uri, call_timeout=CALL_TIMEOUT)
    try:
        yield hv
    finally:
        hv.close()


@pytest.fixture
def real_res(real_hypervisor: LibvirtHypervisor, real_lane: Lane) -> Iterator[Resources]:
    resources = Resources(real_hypervisor, real_lane)
    try:
        yield resources
    finally:
        resources.cleanup()
