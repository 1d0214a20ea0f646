"""Helpers for tests that are not tests themselves (the hypervisor lab)."""
