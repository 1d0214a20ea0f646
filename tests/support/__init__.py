"""Helpers for tests that are not tests themselves: callers, the API world and its generic
cases, refusal checks, instance and live-server HTTP helpers, the hypervisor lab, lanes and
guests, a real sshd, the local host of the e2e lane."""
