"""The transaction bodies of `Northbound`: compare the IDL replica with a spec, then write
only the difference. Each method runs inside one OVSDB transaction in ovsdbapp's IDL thread
(or, for reads, under the connection's lock) and may run again from scratch when OVSDB
answers TRY_AGAIN, so it must depend on nothing but the replica and its arguments.

A row inserted in the current transaction is written, never read back (the IDL cannot read
columns of a row it has not committed yet: the lab's `Row instance has no attribute 'acls'`).
"""

from __future__ import annotations

from typing import Any

from hypervisor.base import NotFound, SpecConflict
from hypervisor.ovn.specs import (
    OWNER_KEY,
    RESERVED_PREFIX,
    AclSpec,
    DhcpSpec,
    InvalidSpec,
    NatSpec,
    NbInventory,
    PortGroupSpec,
    PortGroupState,
    RouterPortSpec,
    RouterSpec,
    SwitchPortSpec,
    SwitchSpec,
    check_match_name,
)

MTU_KEY = "andromede:mtu"
#: On DHCP_Options rows: the switch whose subnet it serves; on ports: their switch.
SWITCH_KEY = "andromede:switch"

Row = Any  # ovs.db.idl.Row: untyped


class Rows:
    def __init__(self, idl: Any, txn: Any, owner: str) -> None:
        self.idl = idl
        self.txn = txn
        self.owner = owner
        self._serialised = False

    # --- helpers -------------------------------------------------------------------------

    def table(self, name: str) -> list[Row]:
        return list(self.idl.tables[name].rows.values())

    def table_rows_named(self, table: str, name: str) -> list[Row]:
        rows = self.idl.tables[table].rows
        index = rows.indexes.get("name")
        if index is None:
            return [r for r in rows.values() if r.name == name]
        entry = rows.IndexEntry(name=name)
        return list(index.irange(entry, entry))

    def ours(self, row: Row) -> bool:
        return bool(row.external_ids.get(OWNER_KEY) == self.owner)

    def named(self, table: str, name: str, what: str) -> Row | None:
        """Our row of `table` named `name`, None if none; SpecConflict if the name is
        someone else's."""
        rows = self.table_rows_named(table, name)
        mine = [r for r in rows if self.ours(r)]
        if rows and not mine:
            raise SpecConflict(f"{what} {name} exists and is not ours (owner {self.owner})")
        return mine[0] if mine else None

    def external_ids(self, pairs: tuple[tuple[str, str], ...], **extra: str) -> dict[str, str]:
        return {**dict(pairs), **extra, OWNER_KEY: self.owner}

    def insert(self, table: str, **columns: Any) -> Row:
        row = self.txn.insert(self.idl.tables[table])
        for column, value in columns.items():
            setattr(row, column, value)
        return row

    @staticmethod
    def converge(row: Row, **columns: Any) -> None:
        """Write each column whose value differs (an equal write would still be a write)."""
        for column, value in columns.items():
            if getattr(row, column) != value:
                setattr(row, column, value)

    def serialise(self) -> None:
        """Before inserting a row whose name no unique index protects: bump our counter in
        NB_Global and verify it at commit, so that two concurrent creators of the same switch
        or router conflict (TRY_AGAIN) and the retry finds the first one's row."""
        if self._serialised:
            return
        self._serialised = True
        # One key for every installation: creations are rare, and a key per owner would be
        # left behind by each installation (or test) that ever ran.
        key = "andromede:serial"
        rows = self.table("NB_Global")
        if not rows:
            # `ovn-nbctl init` or northd makes it; a bare database may not have it yet.
            self.insert("NB_Global", external_ids={key: "1"})
            return
        nb = rows[0]
        nb.verify("external_ids")
        nb.setkey("external_ids", key, str(int(nb.external_ids.get(key, "0")) + 1))

    def bump_nb_cfg(self) -> int:
        nb = self.table("NB_Global")[0]
        nb.verify("nb_cfg")
        target = int(nb.nb_cfg) + 1
        nb.nb_cfg = target
        return target

    # --- switches ------------------------------------------------------------------------

    def ensure_switch(self, spec: SwitchSpec) -> Row:
        extra = {MTU_KEY: str(spec.mtu)} if spec.mtu is not None else {}
        ids = self.external_ids(spec.external_ids, **extra)
        row = self.named("Logical_Switch", spec.name, "switch")
        if row is None:
            self.serialise()
            return self.insert("Logical_Switch", name=spec.name, external_ids=ids)
        self.converge(row, external_ids=ids)
        return row

    def delete_switch(self, name: str) -> None:
        row = self.named("Logical_Switch", name, "switch")
        if row is None:
            return
        for dhcp in self.table("DHCP_Options"):
            if self.ours(dhcp) and dhcp.external_ids.get(SWITCH_KEY) == name:
                dhcp.delete()
        row.delete()  # its ports are its children: OVSDB collects them

    def switch_of(self, port: Row) -> Row | None:
        """The switch of one of our ports: its name is in the port's external_ids (reading
        the switches' port lists would cost a scan of every port)."""
        name = port.external_ids.get(SWITCH_KEY)
        return self.named("Logical_Switch", name, "switch") if name else None

    def ensure_switch_port(self, spec: SwitchPortSpec) -> None:
        switch = self.named("Logical_Switch", spec.switch, "switch")
        if switch is None:
            raise NotFound(f"switch {spec.switch} does not exist")
        groups = []
        for name in spec.port_groups:
            group = self.named("Port_Group", name, "port group")
            if group is None:
                raise NotFound(f"port group {name} does not exist")
            groups.append(group)
        columns: dict[str, Any] = {
            "type": spec.type,
            "options": dict(spec.options),
            "addresses": spec.addresses(),
            "port_security": spec.port_security_column(),
            "external_ids": self.external_ids(spec.external_ids, **{SWITCH_KEY: spec.switch}),
            "dhcpv4_options": [self.dhcp_row(spec.switch, spec.dhcp)] if spec.dhcp else [],
        }
        port = self.named("Logical_Switch_Port", spec.name, "port")
        if port is None:
            port = self.insert("Logical_Switch_Port", name=spec.name, **columns)
            switch.addvalue("ports", port)
            for group in groups:
                group.addvalue("ports", port)
            return
        if port.external_ids.get(SWITCH_KEY) != spec.switch:
            raise SpecConflict(f"port {spec.name} is on another switch")
        self.converge(port, **columns)
        for group in groups:
            if port not in group.ports:
                group.addvalue("ports", port)

    def dhcp_row(self, switch: str, spec: DhcpSpec) -> Row:
        """The DHCP_Options row of ours for (switch, cidr), converged or created."""
        options = spec.options()
        ids = self.external_ids((), **{SWITCH_KEY: switch})
        for row in self.table("DHCP_Options"):
            mine = self.ours(row) and row.external_ids.get(SWITCH_KEY) == switch
            if mine and row.cidr == spec.cidr:
                self.converge(row, options=options, external_ids=ids)
                return row
        self.serialise()
        return self.insert("DHCP_Options", cidr=spec.cidr, options=options, external_ids=ids)

    def delete_switch_port(self, name: str) -> None:
        port = self.named("Logical_Switch_Port", name, "port")
        if port is None:
            return
        switch = self.switch_of(port)
        if switch is not None:
            # Read before writing: the rows' columns then still hold the replica's values.
            used = {d.uuid for p in switch.ports if p.uuid != port.uuid for d in p.dhcpv4_options}
            for dhcp in self.table("DHCP_Options"):
                if (
                    self.ours(dhcp)
                    and dhcp.external_ids.get(SWITCH_KEY) == switch.name
                    and dhcp.uuid not in used
                ):
                    dhcp.delete()
            switch.delvalue("ports", port)
        port.delete()  # group memberships are weak references: OVSDB drops them

    def switch_port_up(self, name: str) -> bool:
        port = self.named("Logical_Switch_Port", name, "port")
        if port is None:
            raise NotFound(f"port {name} does not exist")
        return bool(port.up and port.up[0])

    # --- port groups ---------------------------------------------------------------------

    def create_port_group(self, spec: PortGroupSpec) -> None:
        ids = self.external_ids(spec.external_ids)
        if self.named("Port_Group", spec.name, "port group") is None:
            self.insert("Port_Group", name=spec.name, external_ids=ids)

    def converge_port_group(self, spec: PortGroupSpec, acls: tuple[AclSpec, ...]) -> None:
        group = self.named("Port_Group", spec.name, "port group")
        if group is None:
            raise NotFound(f"port group {spec.name} was deleted meanwhile")
        wanted = set()
        for name in spec.ports:
            port = self.named("Logical_Switch_Port", name, "port")
            if port is not None:  # not there yet: it joins its groups when it is created
                wanted.add(port)
        current = set(group.ports)
        for port in current - wanted:
            group.delvalue("ports", port)
        for port in wanted - current:
            group.addvalue("ports", port)
        self.converge(group, external_ids=self.external_ids(spec.external_ids))
        kept: set[AclSpec] = set()
        for row in group.acls:
            key = _acl_spec(row)
            if key in acls and key not in kept:
                kept.add(key)
            else:  # not in the spec (added behind our back), or a duplicate
                group.delvalue("acls", row)
        for acl in acls:
            if acl not in kept:
                group.addvalue(
                    "acls",
                    self.insert(
                        "ACL",
                        direction=acl.direction,
                        priority=acl.priority,
                        match=acl.match,
                        action=acl.action,
                        external_ids={OWNER_KEY: self.owner},
                    ),
                )

    def delete_port_group(self, name: str) -> None:
        group = self.named("Port_Group", check_match_name(name), "port group")
        if group is not None:
            group.delete()  # its ACLs are its children

    # --- routers -------------------------------------------------------------------------

    def ensure_router(self, spec: RouterSpec) -> None:
        ids = self.external_ids(spec.external_ids)
        router = self.named("Logical_Router", spec.name, "router")
        if router is None:
            self.serialise()
            router = self.insert("Logical_Router", name=spec.name, external_ids=ids)
            for port in spec.ports:
                router.addvalue("ports", self.router_port(None, port))
            for nat in spec.nats:
                router.addvalue("nat", self.insert("NAT", **self.nat_columns(nat)))
            for prefix, nexthop in spec.static_routes:
                router.addvalue("static_routes", self.route_row(prefix, nexthop))
            return
        self.converge(router, external_ids=ids)
        current = {p.name: p for p in router.ports}
        wanted = {p.name: p for p in spec.ports}
        for name, row in current.items():
            if name not in wanted:
                router.delvalue("ports", row)
        for name, port in wanted.items():
            if name in current:
                self.router_port(current[name], port)
            else:
                if self.named("Logical_Router_Port", name, "router port") is not None:
                    raise SpecConflict(f"router port {name} is on another router")
                router.addvalue("ports", self.router_port(None, port))
        nats = {_nat_spec(row): row for row in router.nat}
        for key, row in nats.items():
            if key not in spec.nats:
                router.delvalue("nat", row)
        for nat in spec.nats:
            if nat not in nats:
                router.addvalue("nat", self.insert("NAT", **self.nat_columns(nat)))
        routes = {(r.ip_prefix, r.nexthop): r for r in router.static_routes}
        for key, row in routes.items():
            if key not in spec.static_routes:
                router.delvalue("static_routes", row)
        for prefix, nexthop in spec.static_routes:
            if (prefix, nexthop) not in routes:
                router.addvalue("static_routes", self.route_row(prefix, nexthop))

    def router_port(self, row: Row | None, spec: RouterPortSpec) -> Row:
        columns = {
            "mac": spec.mac,
            "networks": list(spec.networks),
            "external_ids": {OWNER_KEY: self.owner},
        }
        if row is None:
            row = self.insert("Logical_Router_Port", name=spec.name, **columns)
            current: dict[str, Row] = {}
        else:
            self.converge(row, **columns)
            current = {gc.name: gc for gc in row.gateway_chassis}
        # Highest priority first; the Gateway_Chassis name is `<port>_<chassis>` as nbctl's.
        wanted = {
            f"{spec.name}_{chassis}": (chassis, len(spec.gateway_chassis) - i)
            for i, chassis in enumerate(spec.gateway_chassis)
        }
        for name, gc in current.items():
            if name not in wanted:
                row.delvalue("gateway_chassis", gc)
        for name, (chassis, priority) in wanted.items():
            if name in current:
                self.converge(current[name], chassis_name=chassis, priority=priority)
            else:
                row.addvalue(
                    "gateway_chassis",
                    self.insert(
                        "Gateway_Chassis",
                        name=name,
                        chassis_name=chassis,
                        priority=priority,
                        external_ids={OWNER_KEY: self.owner},
                    ),
                )
        return row

    def nat_columns(self, nat: NatSpec) -> dict[str, Any]:
        return {
            "type": nat.type,
            "external_ip": nat.external_ip,
            "logical_ip": nat.logical_ip,
            "logical_port": [nat.logical_port] if nat.logical_port else [],
            "external_mac": [nat.external_mac] if nat.external_mac else [],
            "external_ids": {OWNER_KEY: self.owner},
        }

    def route_row(self, prefix: str, nexthop: str) -> Row:
        return self.insert(
            "Logical_Router_Static_Route",
            ip_prefix=prefix,
            nexthop=nexthop,
            external_ids={OWNER_KEY: self.owner},
        )

    def delete_router(self, name: str) -> None:
        router = self.named("Logical_Router", name, "router")
        if router is not None:
            router.delete()  # ports, NATs and routes are its children

    # --- inventory -----------------------------------------------------------------------

    def inventory(self) -> NbInventory:
        unreadable: list[str] = []
        switches: list[SwitchSpec] = []
        ports: list[SwitchPortSpec] = []
        groups: list[PortGroupState] = []
        routers: list[RouterSpec] = []
        for row in self.table("Logical_Switch"):
            if not self.ours(row):
                continue
            try:
                switches.append(_switch_spec(row))
            except ValueError:  # InvalidSpec, or an mtu that is not a number
                unreadable.append(row.name)
            for port in row.ports:
                if self.ours(port):
                    try:
                        ports.append(_port_spec(row, port))
                    except ValueError:
                        unreadable.append(port.name)
        for row in self.table("Port_Group"):
            if self.ours(row):
                groups.append(
                    PortGroupState(
                        name=row.name,
                        ports=tuple(sorted(p.name for p in row.ports)),
                        acls=tuple(sorted(_acl_spec(a) for a in row.acls)),
                        external_ids=_caller_ids(row),
                    )
                )
        for row in self.table("Logical_Router"):
            if not self.ours(row):
                continue
            try:
                routers.append(_router_spec(row))
            except ValueError:
                unreadable.append(row.name)
        return NbInventory(
            switches=tuple(sorted(switches, key=lambda s: s.name)),
            switch_ports=tuple(sorted(ports, key=lambda p: p.name)),
            port_groups=tuple(sorted(groups, key=lambda g: g.name)),
            routers=tuple(sorted(routers, key=lambda r: r.name)),
            unreadable=tuple(sorted(unreadable)),
        )


def _caller_ids(row: Row) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted((k, v) for k, v in row.external_ids.items() if not k.startswith(RESERVED_PREFIX))
    )


def _acl_spec(row: Row) -> AclSpec:
    return AclSpec(row.direction, int(row.priority), row.match, row.action)


def _nat_spec(row: Row) -> NatSpec | tuple[str, ...]:
    try:
        return NatSpec(
            type=row.type,
            external_ip=row.external_ip,
            logical_ip=row.logical_ip,
            logical_port=row.logical_port[0] if row.logical_port else None,
            external_mac=row.external_mac[0] if row.external_mac else None,
        )
    except InvalidSpec:  # not a NAT we could have written: it goes
        return ("unreadable", str(row.uuid))


def _switch_spec(row: Row) -> SwitchSpec:
    mtu = row.external_ids.get(MTU_KEY)
    return SwitchSpec(name=row.name, external_ids=_caller_ids(row), mtu=int(mtu) if mtu else None)


def _port_spec(switch: Row, row: Row) -> SwitchPortSpec:
    words = row.addresses[0].split() if row.addresses else [""]
    dhcp = row.dhcpv4_options[0] if row.dhcpv4_options else None
    return SwitchPortSpec(
        name=row.name,
        switch=switch.name,
        mac=words[0],
        ips=tuple(words[1:]),
        port_security=bool(row.port_security),
        dhcp=DhcpSpec.from_row(dhcp.cidr, dict(dhcp.options)) if dhcp is not None else None,
        external_ids=_caller_ids(row),
        type=row.type,
        options=tuple(row.options.items()),
    )


def _router_spec(row: Row) -> RouterSpec:
    ports = []
    for port in row.ports:
        chassis = sorted(port.gateway_chassis, key=lambda gc: -int(gc.priority))
        ports.append(
            RouterPortSpec(
                name=port.name,
                mac=port.mac,
                networks=tuple(port.networks),
                gateway_chassis=tuple(gc.chassis_name for gc in chassis),
            )
        )
    nats = []
    for nat in row.nat:
        spec = _nat_spec(nat)
        if not isinstance(spec, NatSpec):
            raise InvalidSpec(f"router {row.name} holds a NAT that is not one")
        nats.append(spec)
    return RouterSpec(
        name=row.name,
        ports=tuple(ports),
        nats=tuple(nats),
        static_routes=tuple((r.ip_prefix, r.nexthop) for r in row.static_routes),
        external_ids=_caller_ids(row),
    )
