"""Tenant networks and their ports (DESIGN §7).

For now one isolated network per tenant (the placeholder until the networking issue brings
real networks, subnets and routers on OVN). A port names the device it is bound to by id,
as Neutron does: the network app never imports the apps whose devices it serves.

The tables keep the names they had when these models lived in `compute` (docs/decisions.md).
"""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant


class TenantNetwork(models.Model):
    """The default isolated network of a tenant: one subnet from the documentation ranges,
    one bridge per host."""

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, related_name="network")
    cidr = models.CharField(max_length=18, unique=True)
    # Where the next address search starts: addresses rotate through the range, so a freed
    # address is not handed out again at once (its old DHCP entry on the host would have to
    # be replaced, which costs a dnsmasq reload).
    next_host_index = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "compute_tenantnetwork"

    def __str__(self) -> str:
        return f"{self.tenant} {self.cidr}"


class Port(models.Model):
    """An address and a MAC on a tenant network, bound to a device (an instance) by its id.
    Unique constraints make two concurrent allocations of one address or MAC impossible."""

    network = models.ForeignKey(TenantNetwork, on_delete=models.PROTECT, related_name="ports")
    device_id = models.UUIDField(db_index=True, help_text="The instance the port is bound to.")
    mac = models.CharField(max_length=17, unique=True)
    ip = models.GenericIPAddressField(protocol="IPv4")

    class Meta:
        db_table = "compute_port"
        constraints = [
            models.UniqueConstraint(fields=["network", "ip"], name="port_unique_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.ip} ({self.mac})"
