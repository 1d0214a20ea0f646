"""Fields the network APIs share: references to the tenant's resources by id or name."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from iaas.api.serializers import StrictCharField
from network import selectors


class TenantRef(StrictCharField):
    """A reference (id, or name where names are unique) to a resource the caller's tenant may
    use, resolved through the network selectors: anything else is `not found`, whether it
    exists in another tenant or not at all."""

    default_error_messages = {"not_found": "No {kind} {ref!r} of yours."}
    finders = {
        "network": selectors.network_find,
        "subnet": selectors.subnet_find,
        "port": selectors.port_find,
        "security group": selectors.security_group_find,
        "router": selectors.router_find,
    }

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        ref = super().run_validation(data)  # a string of at most max_length, or None
        if ref is None or ref is serializers.empty:
            return ref
        view = self.context["view"]
        found = self.finders[self.kind](view.tenant_context.tenant, ref)
        if found is None:
            self.fail("not_found", kind=self.kind, ref=ref[:64])
        return found


def address_list(fixed_ips: Any) -> list[dict[str, str]]:
    return [{"subnet": str(f.subnet_id), "ip_address": f.ip} for f in fixed_ips.all()]


class ReadOnly(serializers.ModelSerializer):
    """Serializers of resources as the API shows them (every field read-only)."""

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        for field in fields.values():
            field.read_only = True
        return fields
