"""Compute models, one module per kind of resource."""

from compute.models.flavors import Flavor
from compute.models.instances import Allocation, Instance
from compute.models.keypairs import KeyPair
from compute.models.migration import Migration
from compute.models.server_groups import ServerGroup

__all__ = ["Allocation", "Flavor", "Instance", "KeyPair", "Migration", "ServerGroup"]
