"""NoCloud seeds: what the guest reads from the ISO."""

from __future__ import annotations

import dataclasses
import io

import pycdlib
import pytest
import yaml

from compute import cloudinit
from network.host_specs import GuestInterface


def read_seed(data: bytes) -> tuple[str, dict[str, str]]:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files = {}
        for name in ("meta-data", "user-data", "network-config"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue().decode()
    finally:
        iso.close()
    return label, files


SEED = cloudinit.Seed(
    instance_id="3f0c7f8e-0000-4000-8000-000000000001",
    hostname="web-1",
    interfaces=(
        GuestInterface(
            mac="52:54:00:AB:CD:EF",
            address_cidr="198.51.100.2/27",
            gateway="198.51.100.1",
            mtu=1442,
            nameservers=("192.0.2.53",),
        ),
    ),
    ssh_public_keys=("ssh-ed25519 AAAAC3Nza laptop # a comment: with ] and 'quotes'",),
)


def test_the_seed_holds_meta_data_user_data_and_network_config() -> None:
    user_data = "#cloud-config\nruncmd: [echo hello]\n"
    label, files = read_seed(cloudinit.build_iso(dataclasses.replace(SEED, user_data=user_data)))
    assert label == "cidata"
    assert files["user-data"] == user_data  # the tenant's, untouched
    assert files["meta-data"].splitlines()[:2] == [
        f'instance-id: "{SEED.instance_id}"',
        'local-hostname: "web-1"',
    ]
    assert "\"ssh-ed25519 AAAAC3Nza laptop # a comment: with ] and 'quotes'\"" in files["meta-data"]
    assert 'macaddress: "52:54:00:ab:cd:ef"' in files["network-config"]
    assert "- 198.51.100.2/27" in files["network-config"]


def test_no_user_data_is_an_empty_cloud_config_never_an_empty_file() -> None:
    _label, files = read_seed(cloudinit.build_iso(SEED))
    assert files["user-data"] == "#cloud-config\n"


@pytest.mark.parametrize("hostname", ["no", "yes", "on", "1e3", "0x10", "null", "123"])
def test_a_hostname_that_looks_like_a_yaml_value_stays_a_string(hostname: str) -> None:
    """Review L8: `no` became the YAML boolean false and `1e3` the number 1000 in meta-data."""
    _label, files = read_seed(cloudinit.build_iso(dataclasses.replace(SEED, hostname=hostname)))
    meta = yaml.safe_load(files["meta-data"])
    assert meta["local-hostname"] == hostname
    assert meta["instance-id"] == SEED.instance_id


def test_the_network_config_gives_each_nic_its_address_and_the_first_the_default_route() -> None:
    import yaml  # PyYAML: what cloud-init itself parses the file with

    seed = dataclasses.replace(
        SEED,
        interfaces=(
            *SEED.interfaces,
            GuestInterface(mac="52:54:00:00:00:02", address_cidr="192.0.2.9/24", gateway=None,
                           mtu=1442),
            GuestInterface(mac="52:54:00:00:00:03", address_cidr=None, gateway=None, mtu=None),
        ),
    )  # fmt: skip
    _label, files = read_seed(cloudinit.build_iso(seed))
    config = yaml.safe_load(files["network-config"])
    assert config["version"] == 2
    eth0, eth1, eth2 = (config["ethernets"][f"eth{i}"] for i in range(3))
    assert eth0["match"] == {"macaddress": "52:54:00:ab:cd:ef"}
    assert eth0["addresses"] == ["198.51.100.2/27"]
    assert eth0["routes"] == [{"to": "0.0.0.0/0", "via": "198.51.100.1"}]
    assert eth0["mtu"] == 1442
    assert eth0["nameservers"] == {"addresses": ["192.0.2.53"]}
    assert eth1["addresses"] == ["192.0.2.9/24"]
    assert "routes" not in eth1
    assert eth2["dhcp4"] is True
    assert "addresses" not in eth2
