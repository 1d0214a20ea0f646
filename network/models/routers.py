"""Routers: a tenant's logical router, with interfaces on its subnets and a gateway on an
external network (SNAT)."""

from __future__ import annotations

import uuid

from django.db import models

from network.models.networks import Network
from network.models.status import Realisation
from tenants.models import Tenant


class Router(models.Model):
    """Its interfaces are ports (`network:router_interface`, device_id = the router) holding
    their subnet's gateway address; its gateway is a port on `external_network`
    (`network:router_gateway`) from whose address the subnets behind it reach outside
    (SNAT, when `enable_snat`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="routers")
    name = models.CharField(max_length=64)
    external_network = models.ForeignKey(
        Network, on_delete=models.PROTECT, null=True, blank=True, related_name="gateway_routers"
    )
    enable_snat = models.BooleanField(default=True)
    status = models.CharField(
        max_length=10, choices=Realisation.choices, default=Realisation.BUILDING
    )
    fault = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="router_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name
