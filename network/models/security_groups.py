"""Security groups: stateful firewalls on ports (port groups and ACLs in OVN)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from tenants.models import Tenant


class SecurityGroup(models.Model):
    """A set of allow rules; what no rule allows is dropped. Each tenant has a `default`
    group (made on first use): ingress only from members of the same group, all egress."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="security_groups")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="secgroup_unique_name"),
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(is_default=True), name="secgroup_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SecurityGroupRule(models.Model):
    """One allow rule: traffic in `direction`, of `protocol` (any when empty) on a port
    range, from (ingress) or to (egress) `remote_ip_prefix` or the members of
    `remote_group` (anyone when both are empty)."""

    class Direction(models.TextChoices):
        INGRESS = "ingress"
        EGRESS = "egress"

    class Ethertype(models.TextChoices):
        IPV4 = "IPv4"
        IPV6 = "IPv6"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    security_group = models.ForeignKey(
        SecurityGroup, on_delete=models.CASCADE, related_name="rules"
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="security_group_rules"
    )
    direction = models.CharField(max_length=7, choices=Direction.choices)
    ethertype = models.CharField(max_length=4, choices=Ethertype.choices, default="IPv4")
    # "" (any), "tcp", "udp", "icmp", or an IP protocol number as text ("47").
    protocol = models.CharField(max_length=8, blank=True)
    port_range_min = models.PositiveIntegerField(null=True, blank=True)
    port_range_max = models.PositiveIntegerField(null=True, blank=True)
    remote_ip_prefix = models.CharField(max_length=43, blank=True)
    remote_group = models.ForeignKey(
        SecurityGroup,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="referencing_rules",
    )
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.direction} {self.protocol or 'any'}"
