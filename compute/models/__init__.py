"""Compute models, one module per kind of resource."""

from compute.models.flavors import Flavor
from compute.models.hosts import Host, OrphanReport, Region, StoragePool, Zone
from compute.models.images import Image
from compute.models.instances import Allocation, Instance, Port, TenantNetwork
from compute.models.keypairs import KeyPair
from compute.models.operations import Operation
from compute.models.server_groups import ServerGroup

__all__ = [
    "Allocation",
    "Flavor",
    "Host",
    "Image",
    "Instance",
    "KeyPair",
    "Operation",
    "OrphanReport",
    "Port",
    "Region",
    "ServerGroup",
    "StoragePool",
    "TenantNetwork",
    "Zone",
]
