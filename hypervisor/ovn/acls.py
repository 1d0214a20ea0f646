"""Security group rules → OVN ACLs (a pure function, no database).

A security group is a port group `@G` with:
- a default drop for its ports both ways at priority 1001: `inport == @G && ip` (what its
  ports send) and `outport == @G && ip` (what they receive). `ip` is IPv4 and IPv6; ARP is
  not IP, so it is never dropped here, and OVN's own answers (DHCP replies from
  ovn-controller, IPv6 ND/RA) are let through by northd's fixed flows above any ACL
  (priority 34000 / 65532 in the ACL stages; see tests/hypervisor/ovn/test_dhcp_acls.py);
- an allow for DHCPv4 requests from its ports (priority 1002, from-lport: udp 68 → 67), so
  that a port whose group has no egress rule still gets its lease: northd lets the reply
  through, not the request (measured on OVN 23.03, see the test above);
- one `allow-related` ACL at priority 1002 per rule: ingress → `to-lport` on
  `outport == @G`, egress → `from-lport` on `inport == @G`; `allow-related` is stateful, so
  the answers to allowed traffic come back through conntrack.

Rules are `AclRuleSpec`s, validated when built (addresses through `ipaddress`, ports as
integers, the protocol from a closed list or a number): nothing else is formatted into a
match here.
"""

from __future__ import annotations

from hypervisor.ovn.specs import (
    ACL_ALLOW_PRIORITY,
    ACL_DROP_PRIORITY,
    AclRuleSpec,
    AclSpec,
    InvalidSpec,
    check_match_name,
)


def acls_for(group: str, rules: tuple[AclRuleSpec, ...] | list[AclRuleSpec]) -> tuple[AclSpec, ...]:
    """The exact ACL set of port group `group` for these rules, sorted and without
    duplicates (two rules that say the same thing are one ACL)."""
    check_match_name(group)
    acls = {
        AclSpec("from-lport", ACL_DROP_PRIORITY, f"inport == @{group} && ip", "drop"),
        AclSpec("to-lport", ACL_DROP_PRIORITY, f"outport == @{group} && ip", "drop"),
        AclSpec(
            "from-lport",
            ACL_ALLOW_PRIORITY,
            f"inport == @{group} && ip4 && udp.src == 68 && udp.dst == 67",
            "allow",
        ),
    }
    for rule in rules:
        if not isinstance(rule, AclRuleSpec):
            raise InvalidSpec(f"{rule!r} is not an AclRuleSpec")
        acls.add(_acl(group, rule))
    return tuple(sorted(acls))


def _acl(group: str, rule: AclRuleSpec) -> AclSpec:
    ingress = rule.direction == "ingress"
    ip = "ip4" if rule.ethertype == "IPv4" else "ip6"
    terms = [f"outport == @{group}" if ingress else f"inport == @{group}", ip]
    # Ingress: the remote end is the source; egress: the destination.
    side = "src" if ingress else "dst"
    if rule.remote_cidr is not None:
        terms.append(f"{ip}.{side} == {rule.remote_cidr}")
    if rule.remote_group is not None:
        terms.append(f"{ip}.{side} == ${check_match_name(rule.remote_group)}_{ip}")
    terms.extend(_protocol_terms(rule, ip))
    return AclSpec(
        "to-lport" if ingress else "from-lport",
        ACL_ALLOW_PRIORITY,
        " && ".join(terms),
        "allow-related",
    )


def _protocol_terms(rule: AclRuleSpec, ip: str) -> list[str]:
    proto = rule.protocol
    if proto is None:
        return []
    if proto in ("tcp", "udp"):
        lo, hi = rule.port_min, rule.port_max
        if lo is None or hi is None:
            return [proto]
        if lo == hi:
            return [proto, f"{proto}.dst == {int(lo)}"]
        return [proto, f"{proto}.dst >= {int(lo)}", f"{proto}.dst <= {int(hi)}"]
    if proto == "icmp":
        icmp = "icmp4" if ip == "ip4" else "icmp6"
        terms = [icmp]
        if rule.port_min is not None:
            terms.append(f"{icmp}.type == {int(rule.port_min)}")
        if rule.port_max is not None:
            terms.append(f"{icmp}.code == {int(rule.port_max)}")
        return terms
    number = int(proto)  # validated digits 0-255 (AclRuleSpec)
    return [f"ip.proto == {number}"]
