"""The operators' states of a host: enabled, disabled (with a reason) or in maintenance."""

from __future__ import annotations

from django.db import transaction

from hosts.models import Host
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest

_OPERATOR_STATES = {Host.State.ENABLED, Host.State.DISABLED, Host.State.MAINTENANCE}


@transaction.atomic
def host_set_state(*, actor: Actor, host: Host, state: str, reason: str = "") -> Host:
    """Operators enable, disable (a reason is required) or put a host in maintenance. Only
    heartbeats mark a host down."""
    if state not in _OPERATOR_STATES:
        raise InvalidRequest(f"An operator can set a host {', '.join(sorted(_OPERATOR_STATES))}.")
    if state == Host.State.DISABLED and not reason.strip():
        raise InvalidRequest("Say why the host is disabled.", code="reason_required")
    locked = Host.objects.select_for_update().get(pk=host.pk)
    if not locked.is_onboarded:
        raise ConflictError(
            f"Host {locked.name} is {locked.state}: it is enabled by onboarding, not by hand.",
            code="wrong_state",
        )
    previous = locked.state
    locked.state = state
    locked.state_reason = reason.strip()[:255] if state != Host.State.ENABLED else ""
    locked.save(update_fields=["state", "state_reason"])
    audit_record(
        actor=actor,
        action=f"host.{'enable' if state == Host.State.ENABLED else state}",
        target=locked,
        details={"from": previous, "to": state, "reason": locked.state_reason},
    )
    return locked
