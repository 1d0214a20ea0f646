"""The secrets part of the `Hypervisor` contract (define_secret, undefine_secret,
list_secrets) and encrypted storage volumes, on both lanes of test_hypervisor_contract.py.
libvirt's test driver (9.0 here) has no secrets driver ("not supported by the connection
driver"): there the driver says so (`Unsupported`), and an encrypted volume's XML is still
accepted as it is (the fake writes no data). A guest writing through an encrypted volume is
tests/e2e/test_volume_encryption.py."""

from __future__ import annotations

import json
import subprocess
import uuid

import libvirt
import pytest

from hypervisor.base import DriverError, SpecConflict, StorageVolumeSpec, Unsupported
from hypervisor.libvirt import LibvirtHypervisor
from tests.support.hypervisor_lanes import Lane, Resources

MIB = 1 << 20


def test_secrets_are_ephemeral_private_and_undefined_idempotently(
    hypervisor: LibvirtHypervisor, lane: Lane
) -> None:
    secret = str(uuid.uuid4())
    if not lane.real:
        for call in (
            lambda: hypervisor.define_secret(secret, b"passphrase"),
            hypervisor.list_secrets,
            lambda: hypervisor.undefine_secret(secret),
        ):
            with pytest.raises(Unsupported):
                call()
        return
    try:
        hypervisor.define_secret(secret, b"first", description="a test")
        hypervisor.define_secret(secret, b"second")  # again: its value is set again
        assert secret in hypervisor.list_secrets()
        conn = libvirt.open(lane.uri)
        try:
            found = conn.secretLookupByUUIDString(secret)
            assert "ephemeral='yes'" in found.XMLDesc(0)
            assert "private='yes'" in found.XMLDesc(0)
            with pytest.raises(libvirt.libvirtError, match="private"):
                found.value(0)  # nobody reads it back through libvirt
        finally:
            conn.close()
    finally:
        hypervisor.undefine_secret(secret)
    assert secret not in hypervisor.list_secrets()
    hypervisor.undefine_secret(secret)  # missing: a no-op
    with pytest.raises(DriverError, match="not a UUID"):
        hypervisor.define_secret("../x", b"v")


def test_an_encrypted_volume_is_luks_in_qcow2_made_with_its_secret(
    hypervisor: LibvirtHypervisor, lane: Lane, res: Resources
) -> None:
    pool, secret = res.pool(), str(uuid.uuid4())
    spec = StorageVolumeSpec(pool, res.name("enc"), 16 * MIB, encryption_secret=secret)
    if lane.real:
        with pytest.raises(DriverError, match=r"[Ss]ecret"):
            hypervisor.create_storage_volume(spec)  # its secret is not defined
        hypervisor.define_secret(secret, b"passphrase")
    try:
        res.volume(spec)
        made = hypervisor.storage_volume_info(pool, spec.name)
        assert hypervisor.create_storage_volume(spec) == made  # the same spec: a no-op
    finally:
        if lane.real:
            hypervisor.undefine_secret(secret)
    plain = StorageVolumeSpec(pool, spec.name, 16 * MIB)
    with pytest.raises(SpecConflict, match="encryption"):
        hypervisor.create_storage_volume(plain)
    with pytest.raises(DriverError, match="standalone qcow2"):
        hypervisor.create_storage_volume(
            StorageVolumeSpec(pool, res.name("raw"), MIB, format="raw", encryption_secret=secret)
        )
    if lane.real:
        path = hypervisor.storage_volume_info(pool, spec.name).path
        info = json.loads(
            subprocess.run(
                ["qemu-img", "info", "--output=json", path],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout
        )  # fmt: skip
        assert info["format"] == "qcow2"
        assert info["encrypted"] is True
        assert info["format-specific"]["data"]["encrypt"]["format"] == "luks"
