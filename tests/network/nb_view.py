"""What the northbound database holds, read with OVN's own `ovn-nbctl` (not with the driver
under test): rows as plain dicts, for the convergence tests to compare with what a tenant
asked for."""

from __future__ import annotations

import json
from typing import Any

from tests.support.ovn_central import OvnCentral

OWNER_KEY = "andromede:owner"


def _value(raw: Any) -> Any:
    """An OVSDB JSON value as Python: maps → dict, sets → list, uuids → their string."""
    if isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str):
        tag, body = raw
        if tag == "map":
            return {_value(k): _value(v) for k, v in body}
        if tag == "set":
            return [_value(v) for v in body]
        if tag in ("uuid", "named-uuid"):
            return body
    return raw


def rows(central: OvnCentral, table: str, owner: str | None = None) -> list[dict[str, Any]]:
    """Every row of `table` ({column: value}; `_uuid` included); only `owner`'s if given."""
    out = json.loads(central.nbctl("--format=json", "list", table))
    found = [
        {h: _value(v) for h, v in zip(out["headings"], row, strict=True)} for row in out["data"]
    ]
    if owner is None:
        return found
    return [r for r in found if r["external_ids"].get(OWNER_KEY) == owner]


def by_name(central: OvnCentral, table: str, owner: str | None = None) -> dict[str, Any]:
    return {r["name"]: r for r in rows(central, table, owner)}


def one(central: OvnCentral, table: str, name: str) -> dict[str, Any] | None:
    """The row of `table` named `name`, or None."""
    return by_name(central, table).get(name)


def port_names(central: OvnCentral, switch: str) -> set[str]:
    """The names of the ports on switch `switch` (empty if it does not exist)."""
    row = one(central, "Logical_Switch", switch)
    if row is None:
        return set()
    ports = {r["_uuid"]: r["name"] for r in rows(central, "Logical_Switch_Port")}
    return {ports[u] for u in _as_list(row["ports"])}


def members(central: OvnCentral, group: str) -> set[str]:
    """The names of the ports in port group `group`."""
    row = one(central, "Port_Group", group)
    assert row is not None, f"no port group {group}"
    ports = {r["_uuid"]: r["name"] for r in rows(central, "Logical_Switch_Port")}
    return {ports[u] for u in _as_list(row["ports"])}


def acls(central: OvnCentral, group: str) -> set[tuple[str, int, str, str]]:
    """The ACLs of port group `group` as (direction, priority, match, action)."""
    row = one(central, "Port_Group", group)
    assert row is not None, f"no port group {group}"
    wanted = set(_as_list(row["acls"]))
    return {
        (a["direction"], a["priority"], a["match"], a["action"])
        for a in rows(central, "ACL")
        if a["_uuid"] in wanted
    }


def dhcp_options(central: OvnCentral, port: str) -> dict[str, Any] | None:
    """The DHCP_Options row port `port` uses, or None."""
    row = one(central, "Logical_Switch_Port", port)
    assert row is not None, f"no port {port}"
    used = _as_list(row["dhcpv4_options"])
    if not used:
        return None
    return next(d for d in rows(central, "DHCP_Options") if d["_uuid"] == used[0])


def router_nats(central: OvnCentral, router: str) -> set[tuple[str, str, str]]:
    """The NATs of router `router` as (type, external_ip, logical_ip)."""
    row = one(central, "Logical_Router", router)
    assert row is not None, f"no router {router}"
    wanted = set(_as_list(row["nat"]))
    return {
        (n["type"], n["external_ip"], n["logical_ip"])
        for n in rows(central, "NAT")
        if n["_uuid"] in wanted
    }


def router_routes(central: OvnCentral, router: str) -> set[tuple[str, str]]:
    row = one(central, "Logical_Router", router)
    assert row is not None, f"no router {router}"
    wanted = set(_as_list(row["static_routes"]))
    return {
        (r["ip_prefix"], r["nexthop"])
        for r in rows(central, "Logical_Router_Static_Route")
        if r["_uuid"] in wanted
    }


def router_ports(central: OvnCentral, router: str) -> dict[str, dict[str, Any]]:
    """The router's ports by name, each with its `networks` and gateway `chassis` names."""
    row = one(central, "Logical_Router", router)
    assert row is not None, f"no router {router}"
    wanted = set(_as_list(row["ports"]))
    chassis = {g["_uuid"]: g["chassis_name"] for g in rows(central, "Gateway_Chassis")}
    return {
        p["name"]: {
            "mac": p["mac"],
            "networks": sorted(_as_list(p["networks"])),
            "chassis": [chassis[g] for g in _as_list(p["gateway_chassis"])],
        }
        for p in rows(central, "Logical_Router_Port")
        if p["_uuid"] in wanted
    }


def _as_list(value: Any) -> list[Any]:
    """A set column: OVSDB writes a one-element set as the bare element."""
    return value if isinstance(value, list) else [value]
