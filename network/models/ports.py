"""Ports: a MAC and addresses on a network, bound to a device by id."""

from __future__ import annotations

import uuid

from django.db import models

from network.models.networks import Network, Subnet
from network.models.status import Realisation
from tenants.models import Tenant


class DeviceOwner(models.TextChoices):
    """Who a port serves. Ports owned by `network:*` are the network's own plumbing: the
    ports API shows them but never lets a tenant delete or rebind them."""

    NONE = "", "none"
    INSTANCE = "compute:instance"
    ROUTER_INTERFACE = "network:router_interface"
    ROUTER_GATEWAY = "network:router_gateway"
    FLOATING_IP = "network:floatingip"


class Port(models.Model):
    """A logical switch port in OVN; its id is the port's name there and libvirt's
    `interfaceid`. Port security (on by default) lets only its own MAC and addresses out."""

    Owner = DeviceOwner

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="ports")
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="ports"
    )
    name = models.CharField(max_length=64, blank=True)
    mac = models.CharField(max_length=17)
    device_id = models.UUIDField(null=True, blank=True, db_index=True)
    device_owner = models.CharField(max_length=32, choices=DeviceOwner.choices, blank=True)
    binding_host = models.CharField(max_length=63, blank=True)
    # The NIC's place on its device (0: the guest's first NIC).
    device_index = models.PositiveSmallIntegerField(null=True, blank=True)
    # Made for its device (an instance created with a network, not with this port): goes
    # with the device. A port the tenant made and then gave to a device is only unbound.
    delete_with_device = models.BooleanField(default=False)
    port_security_enabled = models.BooleanField(default=True)
    security_groups = models.ManyToManyField(
        "network.SecurityGroup", related_name="ports", blank=True
    )
    status = models.CharField(
        max_length=10, choices=Realisation.choices, default=Realisation.BUILDING
    )
    fault = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "mac"], name="port_unique_mac"),
        ]

    def __str__(self) -> str:
        return f"{self.pk} ({self.mac})"


class FixedIP(models.Model):
    """One address of a port in one subnet; unique per subnet by constraint, so two
    concurrent allocations can never hand out one address twice."""

    port = models.ForeignKey(Port, on_delete=models.CASCADE, related_name="fixed_ips")
    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="fixed_ips")
    ip = models.GenericIPAddressField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subnet", "ip"], name="fixedip_unique_address"),
        ]

    def __str__(self) -> str:
        return self.ip
