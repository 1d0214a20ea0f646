"""Compute models, one module per kind of resource."""

from compute.models.hosts import Host, Region, StoragePool, Zone
from compute.models.keypairs import KeyPair

__all__ = ["Host", "KeyPair", "Region", "StoragePool", "Zone"]
