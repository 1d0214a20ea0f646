"""libvirt secrets: the passphrases of encrypted volumes, for `LibvirtHypervisor`'s
`define_secret`, `undefine_secret` and `list_secrets` (contracts in hypervisor/base.py).
Functions here take a live ``virConnect`` and may raise ``libvirtError``. The value is never
logged nor put in an error message; the XML carries none of it (it is set apart)."""

from __future__ import annotations

import uuid as uuid_module

import libvirt
from lxml import etree as ET

from hypervisor.base import DriverError


def check_uuid(value: str) -> str:
    try:
        return str(uuid_module.UUID(value))
    except ValueError:
        raise DriverError(f"secret {value!r}: not a UUID") from None


def secret_xml(uuid: str, description: str) -> str:
    """Ephemeral (libvirtd keeps it in memory only) and private (its value cannot be read
    back through the API)."""
    root = ET.Element("secret", ephemeral="yes", private="yes")
    ET.SubElement(root, "uuid").text = check_uuid(uuid)
    if description:
        ET.SubElement(root, "description").text = description
    return ET.tostring(root, encoding="unicode")


def define(conn: libvirt.virConnect, uuid: str, value: bytes, description: str) -> None:
    secret = conn.secretDefineXML(secret_xml(uuid, description), 0)
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
