"""NoCloud seeds (DESIGN §8): a small ISO 9660 volume labelled `cidata` with meta-data,
user-data and network-config v2, built in memory with pycdlib.

The SSH key goes into meta-data (`public-keys`), so the tenant's user data is passed through
untouched; the network configuration comes from the control plane's IPAM.
"""

from __future__ import annotations

import io
import ipaddress
import json
from dataclasses import dataclass

import pycdlib

from network.host_specs import GuestInterface

#: The user-data of an instance created without any: an empty cloud-config. Never a file of
#: zero bytes: the guest kernel refused to mount a pycdlib ISO holding one (measured with
#: the test image: "no seed disk labelled cidata"), so such an instance got no seed at all.
EMPTY_USER_DATA = "#cloud-config\n"


@dataclass(frozen=True)
class Seed:
    instance_id: str
    hostname: str
    interfaces: tuple[GuestInterface, ...]
    user_data: str = ""
    ssh_public_keys: tuple[str, ...] = ()


def meta_data(seed: Seed) -> str:
    """YAML, one `key: value` per line (as the simplest NoCloud readers expect). The instance
    id is a UUID; the hostname and the keys are written as JSON strings, which are valid YAML
    double-quoted scalars, so a hostname such as `no` or `1e3` stays a string (not a YAML
    boolean or number, review L8) and no key comment can break the document."""
    lines = [
        f"instance-id: {json.dumps(seed.instance_id)}",
        f"local-hostname: {json.dumps(seed.hostname)}",
    ]
    if seed.ssh_public_keys:
        lines.append("public-keys:")
        lines += [f"  - {json.dumps(key)}" for key in seed.ssh_public_keys]
    return "\n".join(lines) + "\n"


def network_config(seed: Seed) -> str:
    """network-config v2: each NIC matched by its MAC (eth0, eth1, …), its static address
    from the IPAM, the default route on the first one with a gateway, the network's MTU and
    DNS servers. Values are JSON strings or numbers (valid YAML) built from validated rows."""
    lines = ["version: 2", "ethernets:"]
    for index, nic in enumerate(seed.interfaces):
        lines += [
            f"  eth{index}:",
            "    match:",
            f"      macaddress: {json.dumps(nic.mac.lower())}",
            f"    set-name: eth{index}",
        ]
        if nic.address_cidr:
            lines += ["    addresses:", f"      - {ipaddress.ip_interface(nic.address_cidr)}"]
        else:
            lines.append("    dhcp4: true")
        if nic.gateway:
            gateway = ipaddress.ip_address(nic.gateway)
            lines += ["    routes:", "      - to: 0.0.0.0/0", f"        via: {gateway}"]
        if nic.mtu:
            lines.append(f"    mtu: {int(nic.mtu)}")
        if nic.nameservers:
            servers = ", ".join(str(ipaddress.ip_address(s)) for s in nic.nameservers)
            lines += ["    nameservers:", f"      addresses: [{servers}]"]
    return "\n".join(lines) + "\n"


def build_iso(seed: Seed) -> bytes:
    """The seed image's bytes."""
    files = {
        ("METADATA.;1", "meta-data"): meta_data(seed),
        ("USERDATA.;1", "user-data"): seed.user_data or EMPTY_USER_DATA,
        ("NETCONF.;1", "network-config"): network_config(seed),
    }
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    try:
        for (iso_name, name), text in files.items():
            data = text.encode()
            iso.add_fp(
                io.BytesIO(data), len(data), f"/{iso_name}", rr_name=name, joliet_path=f"/{name}"
            )
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()
