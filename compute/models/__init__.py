"""Compute models, one module per kind of resource."""

from compute.models.keypairs import KeyPair

__all__ = ["KeyPair"]
