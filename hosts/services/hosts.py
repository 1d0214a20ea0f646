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


@transaction.atomic
def host_begin_drain(*, actor: Actor, host: Host) -> Host:
    """Mark an onboarded host `draining` (placements avoid it: the scheduler takes enabled
    hosts only), audited `host.drain`; already draining: no change, audited again (each
    drain request is). 409 `wrong_state` for a host that is down (its instances cannot be
    moved: nothing answers there) or whose onboarding did not finish. Moving its instances
    is compute's (compute.services.migrate.host_drain). Enable it again when it is done."""
    locked = Host.objects.select_for_update().get(pk=host.pk)
    if not locked.is_onboarded or locked.state == Host.State.DOWN:
        raise ConflictError(
            f"Host {locked.name} is {locked.state}: only a reachable, onboarded host can be "
            "drained.",
            code="wrong_state",
        )
    previous = locked.state
    locked.state = Host.State.DRAINING
    locked.state_reason = "draining: its instances are being migrated to other hosts"
    locked.save(update_fields=["state", "state_reason"])
    audit_record(actor=actor, action="host.drain", target=locked, details={"from": previous})
    return locked
