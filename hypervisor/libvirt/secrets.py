"""libvirt secrets: the passphrases of encrypted volumes, for `LibvirtHypervisor`'s
`define_secret`, `undefine_secret` and `list_secrets` (contracts in hypervisor/base.py).
Functions here take a live ``virConnect`` and may raise ``libvirtError``. The value is never
logged nor put in an error message; the XML carries none of it (it is set apart)."""

from __future__ import annotations

import uuid as uuid_module

import libvirt
from lxml import etree as ET

from hypervisor.base import DriverError, SpecConflict

#: A cephx key's secret has libvirt's usage type ceph (an rbd pool's or a network disk's
#: auth is refused with a secret of another type), under a name unique per secret.
CEPH_USAGE_PREFIX = "andromede-ceph-"


def check_uuid(value: str) -> str:
    try:
        return str(uuid_module.UUID(value))
    except ValueError:
        raise DriverError(f"secret {value!r}: not a UUID") from None


def secret_xml(uuid: str, description: str, ceph: bool = False) -> str:
    """Ephemeral (libvirtd keeps it in memory only) and private (its value cannot be read
    back through the API); `ceph`: a cephx key (usage type ceph)."""
    root = ET.Element("secret", ephemeral="yes", private="yes")
    ET.SubElement(root, "uuid").text = check_uuid(uuid)
    if description:
        ET.SubElement(root, "description").text = description
    if ceph:
        usage = ET.SubElement(root, "usage", type="ceph")
        ET.SubElement(usage, "name").text = CEPH_USAGE_PREFIX + check_uuid(uuid)
    return ET.tostring(root, encoding="unicode")


def define(
    conn: libvirt.virConnect, uuid: str, value: bytes, description: str, ceph: bool = False
) -> None:
    try:
        secret = conn.secretDefineXML(secret_xml(uuid, description, ceph), 0)
    except libvirt.libvirtError as exc:
        # "a secret with UUID … already defined for use with …": the other kind.
        if exc.get_error_code() == libvirt.VIR_ERR_INTERNAL_ERROR and "already defined" in str(exc):
            raise SpecConflict(f"secret {uuid} exists for another use") from None
        raise
    secret.setValue(value, 0)


def undefine(conn: libvirt.virConnect, uuid: str) -> None:
    try:
        secret = conn.secretLookupByUUIDString(check_uuid(uuid))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SECRET:
            return
        raise
    try:
        secret.undefine()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
            raise


def list_all(conn: libvirt.virConnect) -> list[str]:
    return sorted(str(secret.UUIDString()) for secret in conn.listAllSecrets(0))
