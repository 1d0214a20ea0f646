"""The audit log: `record()` writes an event inside the caller's transaction."""

from iaas.audit.service import Actor, audit_record

__all__ = ["Actor", "audit_record"]
