"""Ceph clusters: the shared RBD backends operators declare per zone (hosts.CephCluster)."""

from __future__ import annotations

import re
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from hosts.ceph import CephKeyError, parse_key
from hosts.models import CephCluster, Zone
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from iaas.secret_files import SecretFileError, read_secret_file

#: Names that reach libvirt's XML and qemu-img's options: letters, digits, dots, dashes,
#: underscores (Ceph's own pool and user names are so in practice).
_CEPH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MONITOR_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$")


def parse_monitor(text: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or a bare host: port 6789) → (host, port); 400
    otherwise."""
    host, port = text, "6789"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "6789"
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not _MONITOR_HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidRequest(f"{text!r} is not a monitor address (host:port).")
    return host, int(port)


@transaction.atomic
def ceph_cluster_create(
    *,
    actor: Actor,
    name: str,
    zone: Zone,
    monitors: list[str],
    rados_pool: str,
    user: str,
    key_file: str,
) -> CephCluster:
    """Declare a Ceph cluster serving `zone`. The key file is read once here to refuse a
    mistake early (400: unreadable, readable by others, no key in it); its content is never
    stored, logged or audited, only its path. 409 `already_exists` for a name in use."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", name):
        raise InvalidRequest("A Ceph cluster's name is lowercase letters, digits and dashes.")
    addresses = [parse_monitor(text) for text in monitors]
    if not addresses:
        raise InvalidRequest("A Ceph cluster has at least one monitor.")
    user = user.removeprefix("client.")
    for what, value in (("RADOS pool", rados_pool), ("cephx user", user)):
        if not _CEPH_NAME.fullmatch(value):
            raise InvalidRequest(f"{value!r} is not a {what} name this cloud accepts.")
    path = Path(key_file)
    if not path.is_absolute():
        raise InvalidRequest("The key file's path is absolute.")
    try:
        parse_key(read_secret_file(path, "Ceph key file"), f"the key file {path}")
    except (SecretFileError, CephKeyError) as exc:
        raise InvalidRequest(str(exc), code="invalid_key_file") from None
    try:
        with transaction.atomic():
            cluster = CephCluster.objects.create(
                name=name, zone=zone, monitors=[list(a) for a in addresses],
                rados_pool=rados_pool, user=user, key_file=str(path),
            )  # fmt: skip
    except IntegrityError as exc:
        raise ConflictError(
            f"A Ceph cluster named {name!r} exists.", code="already_exists"
        ) from exc
    audit_record(
        actor=actor,
        action="ceph_cluster.create",
        target=cluster,
        details={
            "zone": zone.name, "jurisdiction": zone.jurisdiction,
            "monitors": cluster.monitors, "rados_pool": rados_pool, "user": user,
            "key_file": str(path),
        },
    )  # fmt: skip
    return cluster


def ceph_cluster_space_record(cluster: CephCluster, *, capacity: int, available: int) -> None:
    """Record the size and free space of `cluster`'s pool as a host just read them."""
    CephCluster.objects.filter(pk=cluster.pk).update(
        capacity_bytes=capacity, available_bytes=available, space_measured_at=timezone.now()
    )
