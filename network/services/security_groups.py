"""Security groups and their rules; each tenant's default group."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.db import IntegrityError, transaction

from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest
from network.models import Port, SecurityGroup, SecurityGroupRule
from network.services import realise
from network.services.names import check_description, check_name
from tenants.models import Tenant
from tenants.quotas import quota_enforce

DEFAULT_NAME = "default"
PROTOCOLS = ("tcp", "udp", "icmp")
PORTED = ("tcp", "udp")


def _rule_rows(group: SecurityGroup, rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        SecurityGroupRule.objects.create(security_group=group, tenant=group.tenant, **rule)


def default_security_group(*, actor: Actor, tenant: Tenant) -> SecurityGroup:
    """The tenant's `default` group, made on first use: ingress only from members of the
    group itself, all egress (as Neutron's). Must run in the caller's transaction after the
    tenant's row was locked, so concurrent first uses make one group."""
    existing = SecurityGroup.objects.filter(tenant=tenant, is_default=True).first()
    if existing is not None:
        return existing
    name = DEFAULT_NAME
    if SecurityGroup.objects.filter(tenant=tenant, name=name).exists():
        name = f"{DEFAULT_NAME}-{str(tenant.pk)[:8]}"
    group = SecurityGroup.objects.create(
        tenant=tenant, name=name, is_default=True,
        description="Ingress from members of this group only; all egress.",
    )  # fmt: skip
    _rule_rows(
        group,
        [
            {"direction": "ingress", "ethertype": "IPv4", "remote_group": group},
            {"direction": "egress", "ethertype": "IPv4"},
        ],
    )
    audit_record(
        actor=actor, action="security_group.create", tenant_id=tenant.pk, target=group,
        details={"default": True},
    )  # fmt: skip
    realise.security_group_changed(group)
    return group


@transaction.atomic
def security_group_create(
    *, actor: Actor, tenant: Tenant, name: str, description: str = ""
) -> SecurityGroup:
    """A new group with Neutron's starting rules: all egress, no ingress."""
    check_name("security group", name)
    check_description(description)
    quota_enforce(tenant, "security_groups")
    default_security_group(actor=actor, tenant=tenant)
    if SecurityGroup.objects.filter(tenant=tenant, name=name).exists():
        raise ConflictError(f"A security group named {name!r} exists.", code="already_exists")
    try:
        with transaction.atomic():
            group = SecurityGroup.objects.create(tenant=tenant, name=name, description=description)
    except IntegrityError as exc:
        raise ConflictError(
            f"A security group named {name!r} exists.", code="already_exists"
        ) from exc
    _rule_rows(group, [{"direction": "egress", "ethertype": "IPv4"}])
    audit_record(actor=actor, action="security_group.create", tenant_id=tenant.pk, target=group)
    realise.security_group_changed(group)
    return group


@transaction.atomic
def security_group_update(
    *, actor: Actor, group: SecurityGroup, name: str | None = None, description: str | None = None
) -> SecurityGroup:
    group = SecurityGroup.objects.select_for_update().get(pk=group.pk)
    changes: dict[str, str] = {}
    if name is not None and name != group.name:
        check_name("security group", name)
        if group.is_default:
            raise ConflictError(
                "The default security group keeps its name.", code="default_security_group"
            )
        if SecurityGroup.objects.filter(tenant=group.tenant, name=name).exists():
            raise ConflictError(f"A security group named {name!r} exists.", code="already_exists")
        changes["name"] = group.name = name
    if description is not None:
        changes["description"] = group.description = check_description(description)
    if changes:
        group.save(update_fields=list(changes))
        audit_record(
            actor=actor, action="security_group.update", tenant_id=group.tenant_id,
            target=group, details=changes,
        )  # fmt: skip
    return group


@transaction.atomic
def security_group_delete(*, actor: Actor, group: SecurityGroup) -> None:
    """Delete a group no port uses and no other group's rule names (409 otherwise); the
    default group stays."""
    group = SecurityGroup.objects.select_for_update().get(pk=group.pk)
    if group.is_default:
        raise ConflictError(
            "The default security group cannot be deleted.", code="default_security_group"
        )
    ports = Port.objects.filter(security_groups=group).count()
    if ports:
        raise ConflictError(
            f"Security group {group.name} is used by {ports} port(s).",
            code="security_group_in_use",
            details={"ports": ports},
        )
    if SecurityGroupRule.objects.filter(remote_group=group).exclude(security_group=group).exists():
        raise ConflictError(
            f"Rules of other security groups name {group.name} as their remote group.",
            code="security_group_in_use",
        )
    audit_record(
        actor=actor, action="security_group.delete", tenant_id=group.tenant_id, target=group
    )
    SecurityGroupRule.objects.filter(security_group=group).delete()
    SecurityGroup.objects.filter(pk=group.pk).delete()
    realise.security_group_removed(group.pk)


def _check_rule(
    *,
    direction: str,
    ethertype: str,
    protocol: str,
    port_range_min: int | None,
    port_range_max: int | None,
    remote_ip_prefix: str,
    remote_group: SecurityGroup | None,
) -> dict[str, Any]:
    if direction not in SecurityGroupRule.Direction.values:
        raise InvalidRequest("A rule's direction is ingress or egress.", code="invalid_rule")
    if ethertype != "IPv4":
        raise InvalidRequest("Only IPv4 rules are offered for now.", code="invalid_rule")
    protocol = protocol.lower()
    if protocol and protocol not in PROTOCOLS:
        if not protocol.isdigit() or not 0 <= int(protocol) <= 255:
            raise InvalidRequest(
                "A protocol is tcp, udp, icmp or an IP protocol number (0-255).",
                code="invalid_rule",
            )
        protocol = str(int(protocol))
        protocol = {"6": "tcp", "17": "udp", "1": "icmp"}.get(protocol, protocol)
    if port_range_min is not None or port_range_max is not None:
        if protocol not in PORTED and protocol != "icmp":
            raise InvalidRequest(
                "Port ranges need protocol tcp or udp (icmp: type and code).",
                code="invalid_rule",
            )
        low = port_range_min if port_range_min is not None else port_range_max
        high = port_range_max if port_range_max is not None else port_range_min
        assert low is not None
        assert high is not None
        limit = 255 if protocol == "icmp" else 65535
        floor = 0 if protocol == "icmp" else 1
        if not (floor <= low <= limit and floor <= high <= limit):
            raise InvalidRequest(f"Ports are between {floor} and {limit}.", code="invalid_rule")
        if protocol in PORTED and low > high:
            raise InvalidRequest("port_range_min is above port_range_max.", code="invalid_rule")
        port_range_min, port_range_max = low, high
    if remote_ip_prefix:
        if remote_group is not None:
            raise InvalidRequest(
                "A rule names a remote CIDR or a remote group, not both.", code="invalid_rule"
            )
        try:
            prefix = ipaddress.ip_network(remote_ip_prefix, strict=False)
        except ValueError as exc:
            raise InvalidRequest(
                f"{remote_ip_prefix!r} is not a CIDR.", code="invalid_rule"
            ) from exc
        if prefix.version != 4:
            raise InvalidRequest("Only IPv4 prefixes are offered for now.", code="invalid_rule")
        remote_ip_prefix = str(prefix)
    return {
        "direction": direction,
        "ethertype": ethertype,
        "protocol": protocol,
        "port_range_min": port_range_min,
        "port_range_max": port_range_max,
        "remote_ip_prefix": remote_ip_prefix,
        "remote_group": remote_group,
    }


@transaction.atomic
def security_group_rule_create(
    *,
    actor: Actor,
    group: SecurityGroup,
    direction: str,
    ethertype: str = "IPv4",
    protocol: str = "",
    port_range_min: int | None = None,
    port_range_max: int | None = None,
    remote_ip_prefix: str = "",
    remote_group: SecurityGroup | None = None,
    description: str = "",
) -> SecurityGroupRule:
    """An allow rule; a rule equal to one the group has is refused (409 `rule_exists`).
    Reaches running guests as soon as OVN has the new ACL."""
    fields = _check_rule(
        direction=direction, ethertype=ethertype, protocol=protocol,
        port_range_min=port_range_min, port_range_max=port_range_max,
        remote_ip_prefix=remote_ip_prefix, remote_group=remote_group,
    )  # fmt: skip
    check_description(description)
    if remote_group is not None and remote_group.tenant_id != group.tenant_id:
        raise InvalidRequest("The remote group is not one of yours.", code="invalid_rule")
    quota_enforce(group.tenant, "security_group_rules")
    group = SecurityGroup.objects.select_for_update().get(pk=group.pk)
    if SecurityGroupRule.objects.filter(security_group=group, **fields).exists():
        raise ConflictError("The security group already has this rule.", code="rule_exists")
    rule = SecurityGroupRule.objects.create(
        security_group=group, tenant=group.tenant, description=description, **fields
    )
    audit_record(
        actor=actor, action="security_group_rule.create", tenant_id=group.tenant_id,
        target=rule, details=rule_details(rule),
    )  # fmt: skip
    realise.security_group_changed(group)
    return rule


def rule_details(rule: SecurityGroupRule) -> dict[str, Any]:
    return {
        "security_group": str(rule.security_group_id),
        "direction": rule.direction,
        "protocol": rule.protocol,
        "ports": [rule.port_range_min, rule.port_range_max],
        "remote_ip_prefix": rule.remote_ip_prefix,
        "remote_group": str(rule.remote_group_id) if rule.remote_group_id else None,
    }


@transaction.atomic
def security_group_rule_delete(*, actor: Actor, rule: SecurityGroupRule) -> None:
    """Remove a rule: running guests lose what it allowed once OVN has dropped its ACL
    (connections it let in are cut too: OVN's ACLs are stateful but re-checked)."""
    group = SecurityGroup.objects.select_for_update().get(pk=rule.security_group_id)
    audit_record(
        actor=actor, action="security_group_rule.delete", tenant_id=group.tenant_id,
        target=rule, details=rule_details(rule),
    )  # fmt: skip
    SecurityGroupRule.objects.filter(pk=rule.pk).delete()
    realise.security_group_changed(group)
