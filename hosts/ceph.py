"""Ceph clusters on hosts (hosts.CephCluster): the cluster's key, read from its file on the
worker's machine, and its rbd pool made ready on a host. Worker-side: the internet-facing API
process never reads a key (it has no hypervisor access either: hosts.hypervisors).

The key is read each time it is needed (an operator may rotate the file) and goes only to
libvirt, as the cluster's ephemeral, private secret of kind ceph, or to the driver's copy
into RBD (hypervisor/libvirt/rbd.py). Never logged, never in an error message: a file that
does not hold a key is reported by its path.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from hosts import naming
from hosts.models import CephCluster, Host
from hypervisor.base import DriverError, Hypervisor, PoolSpec, RbdSource
from iaas.secret_files import SecretFileError, read_secret_file

#: A keyring's ``key = …`` line (``ceph auth get-or-create … -o FILE`` writes one).
_KEYRING_KEY = re.compile(rb"^\s*key\s*=\s*(\S+)\s*$", re.M)


class CephKeyError(DriverError):
    """The cluster's key file cannot be read, is readable by others, or holds no key."""


def parse_key(data: bytes, where: str) -> bytes:
    """The raw cephx key of a key file's content: the key as ``ceph auth get-key`` prints it
    (base64), or a keyring with a ``key =`` line. `where` names the file in errors."""
    found = _KEYRING_KEY.search(data)
    text = found.group(1) if found else data.strip()
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:  # a cephx key is 16 bytes of secret behind a 12-byte header
        raise CephKeyError(f"{where} holds no cephx key (a base64 key or a keyring)")
    return key


def cluster_key(cluster: CephCluster) -> bytes:
    """The raw cephx key of `cluster`'s user, from its key file (0600, see CephCluster)."""
    path = Path(cluster.key_file)
    try:
        data = read_secret_file(path, f"key file of Ceph cluster {cluster.name}")
    except SecretFileError as exc:
        raise CephKeyError(str(exc)) from None
    return parse_key(data, f"the key file {path} of Ceph cluster {cluster.name}")


def rbd_source(cluster: CephCluster) -> RbdSource:
    return RbdSource(
        monitors=tuple((str(host), int(port)) for host, port in cluster.monitors),
        pool=cluster.rados_pool,
        user=cluster.user,
        secret_uuid=str(cluster.secret_uuid),
    )


def ensure_ceph_pool(hv: Hypervisor, host: Host, cluster: CephCluster) -> str:
    """Make `cluster` usable on `host`: its key defined as the cluster's secret (again, each
    time: it is ephemeral, gone when libvirtd restarts), then its rbd pool ensured. Returns
    the pool's name. libvirt's fake hypervisor has no secrets: there the pool alone is
    defined (it connects to nothing)."""
    if host.domain_type != Host.DomainType.TEST:
        hv.define_secret(str(cluster.secret_uuid), cluster_key(cluster), ceph=True)
    name = naming.ceph_pool(cluster.pk)
    hv.ensure_pool(PoolSpec.on_rbd(name, rbd_source(cluster)))
    return name
