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
Guest networks use only 198.51.100.0/24, isolated (see tests/support/hypervisor_lab.py).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisor.base import PoolSpec, RbdSource
from hypervisor.libvirt import LibvirtHypervisor
from tests.support import hypervisor_lab as lab
from tests.support.ceph_lab import CLIENT, POOL, CephLab
from tests.support.hypervisor_lanes import Lane, RealHost, Resources, run_token, sweep

TEST_URI = "test:///default"
REAL_URI = lab.URI
#: Generous: the bound is exercised by its own test; here it only stops a hung run.
CALL_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def real_host() -> Iterator[RealHost]:
    """libvirtd running (installed and started if needed: errors, never skips) and a
    directory for this run's pools."""
    lab.ensure_libvirtd()
    prefix = f"andt{run_token()}"
    root = Path(tempfile.mkdtemp(prefix=f"andromede-drivers-{prefix}-", dir="/var/tmp"))
    root.chmod(0o711)  # guests run as libvirt-qemu: their disks' path must be traversable
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
    token = run_token()
    return Lane("test", TEST_URI, False, Path(f"/andromede-fake-{token}"), f"andt{token}", "test")


@pytest.fixture
def hypervisor(lane: Lane) -> Iterator[LibvirtHypervisor]:
    hv = LibvirtHypervisor(lane.uri, call_timeout=CALL_TIMEOUT)
    try:
        yield hv
    finally:
        hv.close()


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


# --- rbd pools (the Ceph backend) -------------------------------------------------------------


@pytest.fixture
def rbd_pool(
    hypervisor: LibvirtHypervisor, res: Resources, lane: Lane, request: pytest.FixtureRequest
) -> str:
    """An rbd pool on the lane's host: on the real lane, on the session's Ceph lab (its
    cephx user's key in an ephemeral secret of kind ceph); on libvirt's fake, which has no
    secrets and connects to nothing, a pool naming a cluster that does not exist. `res`
    removes it, its volumes, then its secret."""
    secret = str(uuid.uuid4())
    monitors: tuple[tuple[str, int], ...] = (("127.0.0.1", 9),)
    if lane.real:
        ceph: CephLab = request.getfixturevalue("ceph_lab")
        res.secrets.append(secret)
        hypervisor.define_secret(secret, ceph.client_key_bytes(), ceph=True)
        monitors = ceph.monitors
    name = res.name("rbd")
    res.pools.append(name)
    hypervisor.ensure_pool(PoolSpec.on_rbd(name, RbdSource(monitors, POOL, CLIENT, secret)))
    return name
