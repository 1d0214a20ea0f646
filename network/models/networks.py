"""Networks and their subnets."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from network.models.status import Realisation
from tenants.models import Tenant


class Network(models.Model):
    """An L2 network: a logical switch in OVN. Tenant-owned, or operator-owned (`tenant`
    null) and then `shared` (every tenant may attach ports) and/or `external` (a provider
    network on `physical_network`, where router gateways and floating IPs take their
    addresses)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="networks"
    )
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    shared = models.BooleanField(default=False)
    external = models.BooleanField(default=False)
    physical_network = models.CharField(
        max_length=64, blank=True, help_text="External networks: the host bridge mapping name."
    )
    mtu = models.PositiveIntegerField(default=1442)
    is_default = models.BooleanField(
        default=False, help_text="The network instances get when their request names none."
    )
    status = models.CharField(
        max_length=10, choices=Realisation.choices, default=Realisation.BUILDING
    )
    fault = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="network_unique_name"),
            models.UniqueConstraint(
                fields=["name"], condition=Q(tenant=None), name="network_unique_operator_name"
            ),
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(is_default=True), name="network_one_default"
            ),
            # Only operators own shared or external networks.
            models.CheckConstraint(
                condition=Q(tenant=None) | (Q(shared=False) & Q(external=False)),
                name="network_shared_external_operator_only",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Subnet(models.Model):
    """An address range of a network, its gateway and DHCP settings. IPv4 now; the fields
    are those IPv6 needs too (`ip_version`, addresses stored as text)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="subnets")
    # The network's owner, repeated so that reads filter by tenant in one place.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="subnets"
    )
    name = models.CharField(max_length=64, blank=True)
    ip_version = models.PositiveSmallIntegerField(default=4)
    cidr = models.CharField(max_length=43)
    gateway_ip = models.GenericIPAddressField(null=True, blank=True)
    # [{"start": "198.51.100.2", "end": "198.51.100.254"}, …]
    allocation_pools = models.JSONField(default=list)
    dns_nameservers = models.JSONField(default=list, blank=True)
    enable_dhcp = models.BooleanField(default=True)
    # Where the next address search starts (an offset in the pools): addresses rotate, so a
    # freed address rests until every other one has been handed out (network.services.ipam).
    next_index = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "cidr"], name="subnet_unique_cidr"),
        ]

    def __str__(self) -> str:
        return self.cidr
