"""Floating IPs: an address of an external network, mapped one-to-one onto a port's fixed
address by the router between them (dnat_and_snat in OVN)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from network.models.networks import Network
from network.models.ports import Port
from network.models.routers import Router
from network.models.status import Realisation
from tenants.models import Tenant


class FloatingIP(models.Model):
    """Allocated from an external network's pool (its address is held by a
    `network:floatingip` port there, so the IPAM's constraints cover it), then associated
    with a tenant port reachable through one of the tenant's routers, disassociated,
    released."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="floating_ips")
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="floating_ips")
    address_port = models.OneToOneField(
        Port, on_delete=models.PROTECT, related_name="floating_ip_held"
    )
    address = models.GenericIPAddressField()
    port = models.ForeignKey(
        Port, on_delete=models.PROTECT, null=True, blank=True, related_name="floating_ips"
    )
    fixed_ip = models.GenericIPAddressField(null=True, blank=True)
    router = models.ForeignKey(
        Router, on_delete=models.PROTECT, null=True, blank=True, related_name="floating_ips"
    )
    description = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=10, choices=Realisation.choices, default=Realisation.BUILDING
    )
    fault = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One floating IP per port (the port's first fixed address).
            models.UniqueConstraint(
                fields=["port"], condition=Q(port__isnull=False), name="floatingip_one_per_port"
            ),
        ]

    def __str__(self) -> str:
        return self.address
