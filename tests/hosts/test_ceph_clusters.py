"""Ceph clusters (hosts.CephCluster): operators declare one per zone with `manage.py
ceph_cluster_add`; its key stays in a 0600 file on the workers' machines, never in the
database, the audit chain, a log or an answer; a worker makes it usable on a host (its
secret, then its rbd pool), on libvirt's fake and, in the hypervisor lane, on this machine's
libvirtd against the session's Ceph lab."""

from __future__ import annotations

import base64
import logging
import os
import uuid
from io import StringIO
from pathlib import Path

import libvirt
import pytest
from django.core.management import CommandError, call_command

from hosts import naming
from hosts.ceph import CephKeyError, cluster_key, ensure_ceph_pool, parse_key
from hosts.models import CephCluster, Host, Zone
from hosts.services import zones
from hosts.services.ceph import parse_monitor
from hypervisor.libvirt import LibvirtHypervisor
from hypervisor.libvirt.storage import rbd_source
from iaas.audit import Actor
from iaas.models import AuditEvent
from tests.support.ceph_lab import CLIENT, POOL, CephLab

KEY = base64.b64encode(bytes(12) + os.urandom(16)).decode()  # a cephx key's shape


@pytest.fixture
def zone(db: None) -> Zone:
    return zones.zone_create(
        actor=Actor.system("tests"), region="fr-par", name="fr-par-1", site="DC Paris 1",
        city="Paris", country="FR", jurisdiction="FR",
    )  # fmt: skip


def key_file(tmp_path: Path, content: str = KEY, mode: int = 0o600) -> Path:
    path = tmp_path / f"ceph-{uuid.uuid4().hex[:6]}.key"
    path.write_text(content)
    path.chmod(mode)
    return path


def add(zone: Zone, path: Path, *extra: str, name: str = "ceph-1") -> str:
    out = StringIO()
    call_command(
        "ceph_cluster_add", name, "--zone", zone.name, "--monitor", "10.0.0.1:6789",
        "--monitor", "[fd00::2]:6790", "--pool", "volumes", "--user", "client.andromede",
        "--key-file", str(path), *extra, stdout=out,
    )  # fmt: skip
    return out.getvalue()


def test_an_operator_declares_a_cluster_and_only_the_key_files_path_is_kept(
    zone: Zone, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = key_file(tmp_path)
    said = add(zone, path)
    cluster = CephCluster.objects.get()
    assert (cluster.zone, cluster.rados_pool, cluster.user) == (zone, "volumes", "andromede")
    assert cluster.monitors == [["10.0.0.1", 6789], ["fd00::2", 6790]]
    assert cluster.key_file == str(path)
    event = AuditEvent.objects.get(action="ceph_cluster.create")
    assert event.details["key_file"] == str(path)
    # The key is nowhere but in its file: not in a column, the audit chain, the output, logs.
    row = str(list(CephCluster.objects.values_list()))
    for text in (row, str(event.details), said, caplog.text):
        assert KEY not in text
        assert KEY[:16] not in text
    assert cluster_key(cluster) == base64.b64decode(KEY)
    with pytest.raises(CommandError, match="exists"):
        add(zone, path)


@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        (KEY, 0o644, "readable by others"),
        ("not a key", 0o600, "holds no cephx key"),
        ("", 0o600, "holds no cephx key"),
    ],
)
def test_a_key_file_that_cannot_serve_is_refused_and_nothing_recorded(
    zone: Zone, tmp_path: Path, content: str, mode: int, words: str
) -> None:
    with pytest.raises(CommandError, match=words):
        add(zone, key_file(tmp_path, content, mode))
    assert not CephCluster.objects.exists()


def test_bad_names_and_monitors_are_refused(zone: Zone, tmp_path: Path) -> None:
    path = key_file(tmp_path)
    for extra, name in (((), "Ceph_1"), (("--monitor", "10.0.0.1:99999"), "c"),
                        (("--monitor", "a,b:6789"), "c")):  # fmt: skip
        with pytest.raises(CommandError):
            add(zone, path, *extra, name=name)
    with pytest.raises(CommandError, match="zone"):
        call_command("ceph_cluster_add", "c", "--zone", "nowhere", "--monitor", "m",
                     "--pool", "p", "--user", "u", "--key-file", str(path))  # fmt: skip
    assert not CephCluster.objects.exists()
    assert parse_monitor("mon1") == ("mon1", 6789)


def test_a_keyring_serves_as_well_as_a_bare_key() -> None:
    keyring = f'[client.andromede]\n\tkey = {KEY}\n\tcaps mon = "profile rbd"\n'
    assert parse_key(keyring.encode(), "f") == parse_key(KEY.encode(), "f")
    with pytest.raises(CephKeyError, match=r"^f holds no cephx key"):
        parse_key(b"key = !!!", "f")


def test_the_pool_is_named_by_the_cluster_and_never_parses_as_a_hosts_pool() -> None:
    cluster_id = uuid.uuid4()
    name = naming.ceph_pool(cluster_id)
    assert name == f"andromede-ceph-{cluster_id}"
    assert naming.parse_storage_pool(name, ("images", "instances", "volumes")) is None


def _cluster(zone: Zone, path: Path, monitors: list[list[object]]) -> CephCluster:
    return CephCluster.objects.create(
        name="ceph-1", zone=zone, monitors=monitors, rados_pool=POOL, user=CLIENT,
        key_file=str(path),
    )  # fmt: skip


def test_a_worker_makes_the_cluster_usable_on_the_fake_host(zone: Zone, tmp_path: Path) -> None:
    cluster = _cluster(zone, key_file(tmp_path), [["10.0.0.1", 6789]])
    host = Host(name="fake-1", zone=zone, domain_type=Host.DomainType.TEST)
    hv = LibvirtHypervisor("test:///default")
    try:
        pool = ensure_ceph_pool(hv, host, cluster)  # no secrets on the fake: the pool alone
        conn = libvirt.open("test:///default")
        try:
            source = rbd_source(conn.storagePoolLookupByName(pool).XMLDesc(0))
        finally:
            conn.close()
        assert source is not None
        assert (source.monitors, source.pool, source.user) == ((("10.0.0.1", 6789),), POOL,
                                                               CLIENT)  # fmt: skip
        assert source.secret_uuid == str(cluster.secret_uuid)
    finally:
        hv.close()


@pytest.mark.hypervisor
def test_a_worker_makes_the_cluster_usable_on_a_real_host(
    zone: Zone, tmp_path: Path, ceph_lab: CephLab
) -> None:
    """On this machine's libvirtd against the session's Ceph lab: the secret holds the key
    from the file (libvirt connects with it: the pool starts and lists the cluster's
    images), defined again each time (ephemeral)."""
    path = key_file(tmp_path, ceph_lab.client_key())
    cluster = _cluster(zone, path, [list(m) for m in ceph_lab.monitors])
    host = Host(name="local-ceph", zone=zone, domain_type=Host.DomainType.QEMU)
    hv = LibvirtHypervisor("qemu:///system", call_timeout=60)
    image = f"probe-{uuid.uuid4().hex[:8]}"
    ceph_lab.rbd("create", "--size", "4M", f"{POOL}/{image}")
    try:
        pool = ensure_ceph_pool(hv, host, cluster)
        ensure_ceph_pool(hv, host, cluster)  # again: a no-op in effect
        assert hv.pool_info(pool).active
        assert image in [v.name for v in hv.list_storage_volumes(pool)]
    finally:
        conn = libvirt.open("qemu:///system")
        try:
            with_pool = conn.storagePoolLookupByName(naming.ceph_pool(cluster.pk))
            with_pool.destroy()
            with_pool.undefine()
        finally:
            conn.close()
        hv.undefine_secret(str(cluster.secret_uuid))
        hv.close()
        ceph_lab.rbd("rm", f"{POOL}/{image}")
