"""What the control plane wants in OVN's northbound database, as frozen dataclasses of plain
values (DESIGN §7).

Every spec validates itself when built: a name that could not be a row name, a MAC that is
not one, an address or CIDR `ipaddress` refuses, a port outside 0-65535 raise `InvalidSpec`
at once, so nothing a tenant typed reaches an OVN match expression or column unchecked.
Specs are also normalised when built (external_ids and options sorted, CIDRs in canonical
form, MACs in lower case), so that a spec read back from the northbound database by
`Northbound.inventory()` compares equal to the one the caller wrote.

Naming (the caller's choice, these are the conventions the helpers below follow):
- a logical switch is named by the network's UUID, as is (no prefix);
- a logical switch port by the port's UUID (libvirt's `interfaceid` must be a UUID);
- a port group by `port_group_name(security_group_id)`: `pg_<uuid with underscores>`, because
  its name appears in match expressions (`@pg_…`, `$pg_…_ip4`) where `-` is not allowed;
- a router by the router's UUID; a router port by `lrp-<port UUID>` (`router_interface`).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass, field

from hypervisor.base import DriverError

#: The external_ids key that marks a row as ours; its value is the installation's owner id.
OWNER_KEY = "andromede:owner"
#: Keys of ours the driver writes itself; a caller's external_ids may not use the prefix.
RESERVED_PREFIX = "andromede:"

ACL_DROP_PRIORITY = 1001
ACL_ALLOW_PRIORITY = 1002

Pairs = tuple[tuple[str, str], ...]


class InvalidSpec(DriverError, ValueError):
    """A spec holds a value that is not what its field means (not a CIDR, not a port…)."""


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
#: Names that appear inside match expressions (port groups, address sets).
_MATCH_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


def check_name(value: object, what: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidSpec(f"{what} {value!r} is not a valid OVN row name")
    return value


def check_match_name(value: object, what: str = "port group") -> str:
    if not isinstance(value, str) or not _MATCH_NAME.match(value):
        raise InvalidSpec(f"{what} {value!r} cannot be named in a match (letters, digits, _)")
    return value


def check_mac(value: object) -> str:
    mac = value.lower() if isinstance(value, str) else value
    if not isinstance(mac, str) or not _MAC.match(mac):
        raise InvalidSpec(f"{value!r} is not a MAC address")
    return mac


def check_ip(value: object) -> str:
    try:
        return str(ipaddress.ip_address(value))  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidSpec(f"{value!r} is not an IP address") from exc


def check_cidr(value: object, *, strict: bool = True) -> str:
    """A network in canonical form; `strict=False` accepts host bits and drops them."""
    try:
        return str(ipaddress.ip_network(value, strict=strict))  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidSpec(f"{value!r} is not a CIDR") from exc


def check_int(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSpec(f"{what} {value!r} is not an integer in {low}-{high}")
    return value


def _pairs(value: object, what: str, *, caller: bool = True) -> Pairs:
    """Sorted (key, value) pairs of plain strings; a caller may not use our reserved keys."""
    try:
        items = sorted((str(k), str(v)) for k, v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise InvalidSpec(f"{what} must be (key, value) pairs") from exc
    keys = [k for k, _ in items]
    if len(set(keys)) != len(keys):
        raise InvalidSpec(f"{what} repeats a key")
    for key, _ in items:
        if not _KEY.match(key):
            raise InvalidSpec(f"{what} key {key!r} is not a plain key")
        if caller and key.startswith(RESERVED_PREFIX):
            raise InvalidSpec(f"{what} key {key!r}: the {RESERVED_PREFIX} prefix is the driver's")
    return tuple(items)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


# --- Switches and their ports ---------------------------------------------------------------


@dataclass(frozen=True)
class SwitchSpec:
    """A logical switch: one network. `mtu` is kept (external_ids `andromede:mtu`) for the
    reader; what guests get is the DHCP `mtu` option of each subnet."""

    name: str
    external_ids: Pairs = ()
    mtu: int | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "switch")
        _set(self, "external_ids", _pairs(self.external_ids, "external_ids"))
        if self.mtu is not None:
            check_int(self.mtu, 68, 65535, "mtu")


@dataclass(frozen=True)
class DhcpSpec:
    """OVN's built-in DHCPv4 server for one subnet. One DHCP_Options row per (switch, cidr)
    is shared by the ports of that subnet. `server_id` defaults to `router`; a subnet without
    a gateway must give one."""

    cidr: str
    router: str | None
    server_mac: str
    dns_servers: tuple[str, ...] = ()
    lease_time: int = 3600
    mtu: int | None = None
    server_id: str | None = None

    def __post_init__(self) -> None:
        cidr = check_cidr(self.cidr)
        network = ipaddress.ip_network(cidr)
        if network.version != 4:
            raise InvalidSpec("OVN's DHCP here is DHCPv4: the cidr must be IPv4")
        _set(self, "cidr", cidr)
        if self.router is not None:
            _set(self, "router", check_ip(self.router))
            if ipaddress.ip_address(self.router) not in network:
                raise InvalidSpec(f"router {self.router} is outside {cidr}")
        server_id = self.server_id if self.server_id is not None else self.router
        if server_id is None:
            raise InvalidSpec("a subnet without a router needs a server_id")
        _set(self, "server_id", check_ip(server_id))
        _set(self, "server_mac", check_mac(self.server_mac))
        _set(self, "dns_servers", tuple(check_ip(d) for d in self.dns_servers))
        check_int(self.lease_time, 60, 2**31 - 1, "lease_time")
        if self.mtu is not None:
            check_int(self.mtu, 68, 65535, "mtu")

    def options(self) -> dict[str, str]:
        """The DHCP_Options `options` column."""
        opts = {
            "lease_time": str(self.lease_time),
            "server_id": str(self.server_id),
            "server_mac": self.server_mac,
        }
        if self.router is not None:
            opts["router"] = self.router
        if self.dns_servers:
            opts["dns_server"] = "{" + ", ".join(self.dns_servers) + "}"
        if self.mtu is not None:
            opts["mtu"] = str(self.mtu)
        return opts

    @classmethod
    def from_row(cls, cidr: str, options: dict[str, str]) -> DhcpSpec:
        dns = options.get("dns_server", "").strip("{}")
        mtu = options.get("mtu")
        return cls(
            cidr=cidr,
            router=options.get("router"),
            server_mac=options.get("server_mac", ""),
            dns_servers=tuple(d.strip() for d in dns.split(",") if d.strip()),
            lease_time=int(options.get("lease_time", "3600")),
            mtu=int(mtu) if mtu is not None else None,
            server_id=options.get("server_id"),
        )


#: Port types the driver writes: a VIF (""), a router interface, a provider's localnet port.
PORT_TYPES = ("", "router", "localnet")


@dataclass(frozen=True)
class SwitchPortSpec:
    """A logical switch port.

    - A VIF (`type=""`): `mac` and `ips` are its addresses; with `port_security` OVN drops
      every frame whose source MAC or IP is not these (a guest that changes its MAC or IP
      reaches nobody). `dhcp` attaches the subnet's DHCPv4 options.
    - `type="router"`: `mac="router"`, options `router-port` (see `router_interface`).
    - `type="localnet"`: `mac="unknown"`, option `network_name` (see `localnet_port`).

    `port_groups`: groups (security groups) the port joins in the same transaction that
    creates it, so that it is never bound without its rules. It only adds: the full
    membership of a group is `ensure_port_group`'s job.
    """

    name: str
    switch: str
    mac: str
    ips: tuple[str, ...] = ()
    port_security: bool = True
    dhcp: DhcpSpec | None = None
    external_ids: Pairs = ()
    type: str = ""
    options: Pairs = ()
    port_groups: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        check_name(self.name, "port")
        check_name(self.switch, "switch")
        if self.type not in PORT_TYPES:
            raise InvalidSpec(f"port type {self.type!r} is not one of {PORT_TYPES}")
        special = {"router": "router", "localnet": "unknown"}.get(self.type)
        if special is not None:
            if self.mac != special or self.ips or self.port_security or self.dhcp:
                raise InvalidSpec(
                    f"a {self.type} port has mac {special!r}, no ips, no port security, no dhcp"
                )
        else:
            _set(self, "mac", check_mac(self.mac))
            _set(self, "ips", tuple(check_ip(ip) for ip in self.ips))
        _set(self, "external_ids", _pairs(self.external_ids, "external_ids"))
        _set(self, "options", _pairs(self.options, "options", caller=False))
        _set(self, "port_groups", tuple(check_match_name(g) for g in self.port_groups))
        if self.dhcp is not None and not any(
            ipaddress.ip_address(ip) in ipaddress.ip_network(self.dhcp.cidr) for ip in self.ips
        ):
            raise InvalidSpec(f"port {self.name} has no address in its DHCP subnet")

    def addresses(self) -> list[str]:
        """The `addresses` column."""
        if self.type:
            return [self.mac]
        return [" ".join((self.mac, *self.ips))]

    def port_security_column(self) -> list[str]:
        return [" ".join((self.mac, *self.ips))] if self.port_security and not self.type else []


def localnet_port(name: str, switch: str, network_name: str) -> SwitchPortSpec:
    """The port that ties a provider (external) network's switch to the host bridge mapped
    to `network_name` in `ovn-bridge-mappings` (e.g. `physnet1:br-ex`)."""
    return SwitchPortSpec(
        name=name,
        switch=switch,
        mac="unknown",
        port_security=False,
        type="localnet",
        options=(("network_name", check_name(network_name, "network_name")),),
    )


# --- Security groups ------------------------------------------------------------------------

PROTOCOLS = ("tcp", "udp", "icmp")
_PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp"}


def port_group_name(security_group_id: str) -> str:
    """`pg_<uuid with underscores>`: the port group of a security group."""
    return "pg_" + str(uuid.UUID(security_group_id)).replace("-", "_")


@dataclass(frozen=True)
class AclRuleSpec:
    """A security group rule as the tenant wrote it.

    `protocol`: None (any), "tcp", "udp", "icmp" (ICMPv6 for IPv6), or an IP protocol number
    0-255 (int or digits; 6 and 17 become tcp and udp). For tcp/udp `port_min`/`port_max` are
    the destination port range (either may be None: no range, or one port); for icmp they
    are the ICMP type and code, as Neutron has it. `remote_cidr` (host bits dropped) or
    `remote_group` (a port group name: its `$<name>_ip4`/`_ip6` address set), not both.
    """

    direction: str
    ethertype: str = "IPv4"
    protocol: str | int | None = None
    port_min: int | None = None
    port_max: int | None = None
    remote_cidr: str | None = None
    remote_group: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("ingress", "egress"):
            raise InvalidSpec(f"direction {self.direction!r} is not ingress or egress")
        if self.ethertype not in ("IPv4", "IPv6"):
            raise InvalidSpec(f"ethertype {self.ethertype!r} is not IPv4 or IPv6")
        _set(self, "protocol", _protocol(self.protocol, self.ethertype))
        limit = 255 if self.protocol == "icmp" else 65535
        for what in ("port_min", "port_max"):
            value = getattr(self, what)
            if value is not None:
                if self.protocol not in ("tcp", "udp", "icmp"):
                    raise InvalidSpec(f"{what} needs protocol tcp, udp or icmp")
                check_int(value, 0 if self.protocol == "icmp" else 1, limit, what)
        if self.protocol in ("tcp", "udp"):
            if self.port_min is None and self.port_max is not None:
                _set(self, "port_min", self.port_max)
            if self.port_max is None and self.port_min is not None:
                _set(self, "port_max", self.port_min)
            if self.port_min is not None and self.port_min > self.port_max:  # type: ignore[operator]
                raise InvalidSpec("port_min is above port_max")
        if self.protocol == "icmp" and self.port_max is not None and self.port_min is None:
            raise InvalidSpec("an ICMP code needs an ICMP type")
        if self.remote_cidr is not None and self.remote_group is not None:
            raise InvalidSpec("a rule has a remote CIDR or a remote group, not both")
        if self.remote_cidr is not None:
            cidr = check_cidr(self.remote_cidr, strict=False)
            version = 4 if self.ethertype == "IPv4" else 6
            if ipaddress.ip_network(cidr).version != version:
                raise InvalidSpec(f"remote CIDR {cidr} is not {self.ethertype}")
            _set(self, "remote_cidr", cidr)
        if self.remote_group is not None:
            check_match_name(self.remote_group, "remote group")


def _protocol(value: str | int | None, ethertype: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidSpec(f"protocol {value!r} is not a protocol")
    text = str(value).strip().lower()
    if text in PROTOCOLS:
        return text
    if text.isdigit() and text.isascii():
        number = check_int(int(text), 0, 255, "protocol")
        icmp = "58" if ethertype == "IPv6" else "1"
        return _PROTOCOL_NUMBERS.get(str(number)) or (
            "icmp" if str(number) == icmp else str(number)
        )
    raise InvalidSpec(f"protocol {value!r} is not tcp, udp, icmp or a number 0-255")


@dataclass(frozen=True)
class PortGroupSpec:
    """A security group: a port group, its member ports and its rules (`acls_for`)."""

    name: str
    ports: tuple[str, ...] = ()
    rules: tuple[AclRuleSpec, ...] = ()
    external_ids: Pairs = ()

    def __post_init__(self) -> None:
        check_match_name(self.name)
        _set(self, "ports", tuple(sorted({check_name(p, "port") for p in self.ports})))
        for rule in self.rules:
            if not isinstance(rule, AclRuleSpec):
                raise InvalidSpec(f"{rule!r} is not an AclRuleSpec")
        _set(self, "external_ids", _pairs(self.external_ids, "external_ids"))


@dataclass(frozen=True, order=True)
class AclSpec:
    """One ACL row as OVN holds it (what `acls_for` produces and `inventory` reads back)."""

    direction: str  # from-lport | to-lport
    priority: int
    match: str
    action: str


# --- Routers --------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class RouterPortSpec:
    """A logical router port: `networks` are interface addresses ("10.0.0.1/24").
    `gateway_chassis`, highest priority first, makes it a distributed gateway port (the one
    on a provider network, where SNAT and floating IPs happen)."""

    name: str
    mac: str
    networks: tuple[str, ...]
    gateway_chassis: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name, "router port")
        _set(self, "mac", check_mac(self.mac))
        if not self.networks:
            raise InvalidSpec("a router port needs at least one network")
        nets = []
        for net in self.networks:
            try:
                nets.append(str(ipaddress.ip_interface(net)))
            except (TypeError, ValueError) as exc:
                raise InvalidSpec(f"{net!r} is not an address/prefix") from exc
        _set(self, "networks", tuple(nets))
        _set(self, "gateway_chassis", tuple(check_name(c, "chassis") for c in self.gateway_chassis))


@dataclass(frozen=True, order=True)
class NatSpec:
    """`snat`: `logical_ip` is the inside CIDR leaving as `external_ip`. `dnat_and_snat` (a
    floating IP): `logical_ip` is one address; `logical_port` + `external_mac` make it
    distributed (answered on the port's chassis), without them it goes through the gateway."""

    type: str
    external_ip: str
    logical_ip: str
    logical_port: str | None = None
    external_mac: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ("snat", "dnat_and_snat"):
            raise InvalidSpec(f"NAT type {self.type!r} is not snat or dnat_and_snat")
        _set(self, "external_ip", check_ip(self.external_ip))
        if self.type == "snat":
            logical = check_cidr(self.logical_ip)
            if logical.endswith(("/32", "/128")):
                logical = logical.rsplit("/", 1)[0]  # as OVN writes a single address
            _set(self, "logical_ip", logical)
        else:
            _set(self, "logical_ip", check_ip(self.logical_ip))
        if (self.logical_port is None) != (self.external_mac is None):
            raise InvalidSpec("logical_port and external_mac go together")
        if self.logical_port is not None:
            check_name(self.logical_port, "logical_port")
            _set(self, "external_mac", check_mac(self.external_mac))


@dataclass(frozen=True)
class RouterSpec:
    """A logical router with exactly these ports, NATs and static routes
    ((prefix, nexthop) pairs, e.g. ("0.0.0.0/0", "203.0.113.1"))."""

    name: str
    ports: tuple[RouterPortSpec, ...] = ()
    nats: tuple[NatSpec, ...] = ()
    static_routes: Pairs = ()
    external_ids: Pairs = ()

    def __post_init__(self) -> None:
        check_name(self.name, "router")
        _set(self, "ports", tuple(sorted(self.ports)))
        names = [p.name for p in self.ports]
        if len(set(names)) != len(names):
            raise InvalidSpec("two router ports share a name")
        _set(self, "nats", tuple(sorted(set(self.nats))))
        routes = {(check_cidr(p), check_ip(n)) for p, n in self.static_routes}
        _set(self, "static_routes", tuple(sorted(routes)))
        _set(self, "external_ids", _pairs(self.external_ids, "external_ids"))


def router_interface(
    port_id: str,
    switch: str,
    mac: str,
    networks: tuple[str, ...],
    *,
    gateway_chassis: tuple[str, ...] = (),
    external_ids: Pairs = (),
) -> tuple[RouterPortSpec, SwitchPortSpec]:
    """A router's leg on a switch: the router port `lrp-<port_id>` (put it in the router's
    `RouterSpec.ports`) and its peer, the switch port `<port_id>` of type "router"
    (`ensure_switch_port` it). `port_id` is the control plane's port UUID.

    A gateway leg (`gateway_chassis` given, on a provider network) also has the switch port
    announce the router's NAT addresses (`nat-addresses=router`): the chassis holding the
    gateway sends gratuitous ARPs for its SNAT address and floating IPs, so that an upstream
    router's cached MAC for an address now served by another router is replaced at once
    instead of black-holing it until the cache expires (measured in the lab: a floating IP
    reused by a new router stayed unreachable from the outside for over 20 s)."""
    lrp = RouterPortSpec(
        name=f"lrp-{port_id}", mac=mac, networks=networks, gateway_chassis=gateway_chassis
    )
    options = [("router-port", lrp.name)]
    if gateway_chassis:
        options.append(("nat-addresses", "router"))
    lsp = SwitchPortSpec(
        name=port_id,
        switch=switch,
        mac="router",
        port_security=False,
        type="router",
        options=tuple(options),
        external_ids=external_ids,
    )
    return lrp, lsp


# --- What the northbound database holds ------------------------------------------------------


@dataclass(frozen=True)
class PortGroupState:
    """A port group of ours as the NB holds it: compare `acls` with `acls_for(...)`."""

    name: str
    ports: tuple[str, ...]
    acls: tuple[AclSpec, ...]
    external_ids: Pairs = ()


@dataclass(frozen=True)
class NbInventory:
    """Every row of ours (owner id) in the NB, as specs, for a reconciler to diff."""

    switches: tuple[SwitchSpec, ...] = ()
    switch_ports: tuple[SwitchPortSpec, ...] = ()
    port_groups: tuple[PortGroupState, ...] = ()
    routers: tuple[RouterSpec, ...] = ()
    #: Names of our switches, ports and routers whose rows no longer read as a spec (changed
    #: behind our back): an ensure with the database's spec repairs them.
    unreadable: tuple[str, ...] = ()
