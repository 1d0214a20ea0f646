"""Onboarding a hypervisor host over SSH and libvirt (M6).

Trust first: a host is reached only once its SSH host key is pinned — the fingerprint the
operator expected, or the one first seen, which the operator compares out of band and
confirms in a second step; a presented key that differs is refused, nothing is enabled.
Then the storage directories are made over SSH, libvirt must answer at the URI (a qemu+ssh
channel trusting only the pinned key: hosts.libvirt_uris), the domain type is probed and the
pools are ensured; only then is the host enabled.

Two ways in:
- the operators' API (`host_register`): the host is recorded `pending` and the work is done by
  a worker (`host_onboarding_run`, Celery task `hosts.onboard` on the control queue): the
  internet-facing API process holds no SSH key and opens no hypervisor connection (M11);
  without an expected fingerprint the worker stops at `awaiting_confirmation` with the key it
  saw, and `host_confirm_key` pins it and sends the host back to a worker;
- operators' commands (`host_onboard`: manage.py host_add, bootstrap_local_host), inline: a
  remote host needs its expected fingerprint (host_add prints the one seen when it is missing).

Refusals and failures are audited; a refused request changes nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hosts import naming
from hosts.hypervisors import hypervisor_for_uri, ssh_endpoint
from hosts.libvirt_uris import check_libvirt_uri, connection_uri
from hosts.models import Host, StoragePool, Zone
from hypervisor.base import DriverError, HostFacts, Hypervisor, PoolInfo, PoolSpec, TransientError
from hypervisor.ssh import (
    HostKey,
    HostKeyMismatch,
    SshAuthenticationFailed,
    SshUnreachable,
    open_session,
    scan_host_public_key,
)
from iaas.audit import Actor, audit_record
from iaas.celery import CONTROL_QUEUE, app, host_queue
from iaas.errors import ConflictError, DomainError, InvalidRequest

logger = logging.getLogger(__name__)

POOL_ROLES = (StoragePool.Role.IMAGES, StoragePool.Role.INSTANCES, StoragePool.Role.VOLUMES)
GIB = 1024**3
#: A pending host nobody picked up for this long is sent to a worker again.
RESEND_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class HostRegistration:
    """What an operator gives to onboard a host. Blank `ssh_host`: the local machine (the
    embedded default), reached through libvirt only."""

    name: str
    zone: Zone
    libvirt_uri: str
    storage_root: str
    ssh_host: str = ""
    ssh_port: int = 22
    ssh_username: str = "root"
    expected_fingerprint: str = ""
    domain_type: str = ""  # kvm | qemu; blank: kvm if it really works, else qemu
    ovs_bridge: str = "br-int"
    ovs_datapath: str = "system"  # system (kernel) | netdev (userspace)


@dataclass(frozen=True)
class _Prepared:
    facts: HostFacts
    domain_type: str
    pools: dict[str, tuple[PoolSpec, PoolInfo]]


def _audit_refusal(actor: Actor, name: str, error: DomainError, **target: object) -> None:
    audit_record(
        actor=actor,
        action="host.onboard",
        target_type="host",
        target_label=name,
        outcome="refused",
        details={"code": error.code, "message": error.message, **error.details},
        **target,  # type: ignore[arg-type]
    )
    error.audited = True


OVS_BRIDGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")


def _refuse(actor: Actor, registration: HostRegistration, error: DomainError) -> None:
    """Audit a refused onboarding, then raise it (the error carries `audited`)."""
    _audit_refusal(actor, registration.name, error)
    raise error


def _validate(actor: Actor, registration: HostRegistration) -> None:
    try:
        host_queue(registration.name)
    except ValueError:
        _refuse(
            actor,
            registration,
            InvalidRequest(
                "A host name is lower-case letters, digits, '.' and '-' (it names a queue).",
                code="invalid",
                details={"name": registration.name[:80]},
            ),
        )
    try:
        check_libvirt_uri(
            registration.libvirt_uri,
            ssh_host=registration.ssh_host,
            ssh_port=registration.ssh_port,
            ssh_username=registration.ssh_username,
        )
    except InvalidRequest as exc:
        _refuse(actor, registration, exc)
    if not OVS_BRIDGE.fullmatch(registration.ovs_bridge) or (
        registration.ovs_datapath not in Host.Datapath.values
    ):
        _refuse(
            actor,
            registration,
            InvalidRequest(
                "ovs_bridge is a bridge name (at most 15 letters, digits, '.', '_', '-') and "
                f"ovs_datapath one of {', '.join(Host.Datapath.values)}.",
                code="invalid",
            ),
        )
    if Host.objects.filter(name=registration.name).exists():
        raise ConflictError(f"A host named {registration.name!r} exists.", code="already_exists")


def _mismatch(where: str, expected: str, presented: str) -> ConflictError:
    return ConflictError(
        f"The SSH host key of {where} is {presented}, not the expected {expected}. "
        "Verify the host's key out of band before onboarding it.",
        code="host_key_mismatch",
        details={"expected": expected, "presented": presented},
    )


def _as_domain_error(exc: DriverError, where: str, libvirt_uri: str) -> DomainError:
    """What an operator reads about a driver or SSH failure during onboarding."""
    if isinstance(exc, HostKeyMismatch):  # changed between the scan and the session
        return ConflictError(
            str(exc),
            code="host_key_mismatch",
            details={"expected": exc.expected, "presented": exc.presented},
        )
    if isinstance(exc, SshUnreachable):
        return InvalidRequest(str(exc), code="host_unreachable")
    if isinstance(exc, SshAuthenticationFailed):
        return InvalidRequest(
            f"{where} refused the control plane's SSH key: install the control plane's public "
            "key (ANDROMEDE_SSH_PRIVATE_KEY.pub on the workers) in the host's authorized_keys. "
            f"({exc})",
            code="ssh_authentication_failed",
        )
    return InvalidRequest(
        f"libvirt at {libvirt_uri} did not answer as expected: {exc}",
        code="libvirt_unreachable" if isinstance(exc, TransientError) else "libvirt_error",
    )


def _scan(ssh_host: str, ssh_port: int, ssh_username: str) -> HostKey:
    """The key the host presents (key exchange only: nothing is authenticated or sent)."""
    return scan_host_public_key(
        ssh_endpoint(ssh_host, ssh_port, ssh_username),
        timeout=settings.SSH_CONNECT_TIMEOUT_SECONDS,
    )


def _choose_domain_type(hypervisor: Hypervisor, available: tuple[str, ...], wanted: str) -> str:
    if wanted:
        if wanted not in available:
            raise InvalidRequest(
                f"Domain type {wanted!r} is not offered by this host (it offers "
                f"{', '.join(available) or 'nothing'}).",
                code="domain_type_unavailable",
            )
        return wanted
    # KVM can be listed yet unusable (nested virtualisation without MSR support): try it.
    if "kvm" in available and hypervisor.probe_domain_type("kvm"):
        return "kvm"
    if "qemu" in available:
        return "qemu"
    if available == ("test",):  # libvirt's test:///default driver: the fake hypervisor
        return "test"
    raise InvalidRequest(
        "The host offers neither kvm nor qemu guests.", code="domain_type_unavailable"
    )


def _prepare(registration: HostRegistration, pinned: HostKey | None) -> _Prepared:
    """Storage directories over SSH (the pinned key only), libvirt facts, domain type, pools.
    Raises a DomainError saying what went wrong."""
    where = f"{registration.ssh_host}:{registration.ssh_port}"
    try:
        if registration.ssh_host:
            assert pinned is not None
            endpoint = ssh_endpoint(
                registration.ssh_host, registration.ssh_port, registration.ssh_username
            )
            dirs = [f"{registration.storage_root}/{role}" for role in POOL_ROLES]
            with open_session(
                endpoint, pinned.fingerprint, connect_timeout=settings.SSH_CONNECT_TIMEOUT_SECONDS
            ) as session:
                session.check_run(
                    ["mkdir", "-p", "--", *dirs], timeout=settings.SSH_COMMAND_TIMEOUT_SECONDS
                )
        hypervisor = hypervisor_for_uri(
            connection_uri(
                name=registration.name,
                libvirt_uri_text=registration.libvirt_uri,
                ssh_host=registration.ssh_host,
                ssh_port=registration.ssh_port,
                ssh_username=registration.ssh_username,
                host_key=pinned,
            )
        )
        facts = hypervisor.facts()
        domain_type = _choose_domain_type(hypervisor, facts.domain_types, registration.domain_type)
        pools: dict[str, tuple[PoolSpec, PoolInfo]] = {}
        for role in POOL_ROLES:
            spec = PoolSpec(
                name=naming.storage_pool(registration.name, role),
                path=f"{registration.storage_root}/{role}",
            )
            hypervisor.ensure_pool(spec)
            pools[role] = (spec, hypervisor.pool_info(spec.name))
    except DriverError as exc:
        raise _as_domain_error(exc, where, registration.libvirt_uri) from exc
    return _Prepared(facts=facts, domain_type=domain_type, pools=pools)


def _record_onboarded(host: Host, prepared: _Prepared, pinned: HostKey | None) -> None:
    """Write facts, pools and the pinned key on `host` (locked by the caller), enabled."""
    facts = prepared.facts
    host.domain_type = prepared.domain_type
    host.arch = facts.arch
    host.cpu_model = facts.cpu_model
    host.cpus = facts.cpus
    host.memory_mb = facts.memory_mb
    host.disk_gb = prepared.pools[StoragePool.Role.INSTANCES][1].capacity_bytes // GIB
    host.libvirt_version = facts.libvirt_version
    host.hypervisor_version = facts.hypervisor_version
    host.domain_types = list(facts.domain_types)
    host.security_driver = facts.security_driver
    if pinned is not None:
        host.ssh_host_key_fingerprint = pinned.fingerprint
        host.ssh_host_key = f"{pinned.key_type} {pinned.key_base64}"
    host.ssh_host_key_seen_fingerprint = host.ssh_host_key_seen = ""
    host.state, host.state_reason, host.onboarding_error_code = Host.State.ENABLED, "", ""
    host.last_heartbeat_at = timezone.now()
    host.save()
    for role, (spec, info) in prepared.pools.items():
        StoragePool.objects.update_or_create(
            host=host,
            role=role,
            defaults={
                "name": spec.name,
                "path": spec.path,
                "capacity_bytes": info.capacity_bytes,
                "available_bytes": info.available_bytes,
            },
        )


def _onboarded_details(host: Host, zone: Zone) -> dict[str, object]:
    return {
        "zone": zone.name,
        "libvirt_uri": host.libvirt_uri,
        "ssh_host_key_fingerprint": host.ssh_host_key_fingerprint,
        "domain_type": host.domain_type,
        "cpus": host.cpus,
        "memory_mb": host.memory_mb,
        "security_driver": host.security_driver,
    }


# --- Inline: operators' commands -------------------------------------------------------------


def host_onboard(*, actor: Actor, registration: HostRegistration) -> Host:
    """Onboard a host in this process (manage.py commands, never the API process): a remote
    host must come with its expected fingerprint — without it, the refusal (409
    `host_key_unconfirmed`) carries the fingerprint seen, to verify and give back."""
    _validate(actor, registration)
    pinned: HostKey | None = None
    if registration.ssh_host:
        where = f"{registration.ssh_host}:{registration.ssh_port}"
        try:
            pinned = _scan(registration.ssh_host, registration.ssh_port, registration.ssh_username)
        except DriverError as exc:
            _refuse(actor, registration, _as_domain_error(exc, where, registration.libvirt_uri))
            raise  # unreachable: _refuse raises
        if not registration.expected_fingerprint:
            _refuse(
                actor,
                registration,
                ConflictError(
                    f"{where} presents the SSH host key {pinned.fingerprint}. Compare it with "
                    "the host's own (on its console: ssh-keygen -lf "
                    "/etc/ssh/ssh_host_ed25519_key.pub), then onboard it with that "
                    "fingerprint as the expected one.",
                    code="host_key_unconfirmed",
                    details={"presented": pinned.fingerprint},
                ),
            )
        if pinned.fingerprint != registration.expected_fingerprint:
            _refuse(
                actor,
                registration,
                _mismatch(where, registration.expected_fingerprint, pinned.fingerprint),
            )
    try:
        prepared = _prepare(registration, pinned)
    except DomainError as exc:
        _refuse(actor, registration, exc)
        raise  # unreachable
    try:
        with transaction.atomic():
            host = Host(
                name=registration.name,
                zone=registration.zone,
                libvirt_uri=registration.libvirt_uri,
                ssh_host=registration.ssh_host,
                ssh_port=registration.ssh_port,
                ssh_username=registration.ssh_username,
                storage_root=registration.storage_root,
                ovs_bridge=registration.ovs_bridge,
                ovs_datapath=registration.ovs_datapath,
            )
            _record_onboarded(host, prepared, pinned)
            audit_record(
                actor=actor,
                action="host.create",
                target=host,
                details=_onboarded_details(host, registration.zone),
            )
    except IntegrityError as exc:
        raise ConflictError(
            f"A host named {registration.name!r} exists.", code="already_exists"
        ) from exc
    return host


# --- Through a worker: the operators' API ----------------------------------------------------


def send_onboarding(host_id: uuid.UUID | str) -> bool:
    """Put the host's onboarding on the control queue (its workers hold the SSH key); True when
    the broker took it. With the broker down the host stays pending and is sent again by
    `host_onboarding_resend`."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0)  # no retry loop on a request
            app.send_task(
                "hosts.onboard",
                args=(str(host_id),),
                queue=CONTROL_QUEUE,
                retry=False,
                connection=connection,
            )
    except Exception as exc:  # the broker is down: the resend beat will send it
        logger.warning("onboarding of host %s not sent (%s); it will be resent", host_id, exc)
        return False
    return True


def _send_after_commit(host_id: uuid.UUID) -> None:
    transaction.on_commit(lambda: send_onboarding(host_id), robust=True)


def host_register(*, actor: Actor, registration: HostRegistration) -> Host:
    """Record the host `pending` (audited `host.create`) and hand its onboarding to a worker.
    The request is checked here (name, zone, URI policy); nothing is contacted."""
    _validate(actor, registration)
    try:
        with transaction.atomic():
            host = Host.objects.create(
                name=registration.name,
                zone=registration.zone,
                libvirt_uri=registration.libvirt_uri,
                ssh_host=registration.ssh_host,
                ssh_port=registration.ssh_port,
                ssh_username=registration.ssh_username,
                ssh_host_key_fingerprint=registration.expected_fingerprint,
                storage_root=registration.storage_root,
                domain_type=registration.domain_type,
                ovs_bridge=registration.ovs_bridge,
                ovs_datapath=registration.ovs_datapath,
                state=Host.State.PENDING,
            )
            audit_record(
                actor=actor,
                action="host.create",
                target=host,
                details={
                    "zone": registration.zone.name,
                    "libvirt_uri": registration.libvirt_uri,
                    "state": Host.State.PENDING,
                    "expected_fingerprint": registration.expected_fingerprint,
                },
            )
            _send_after_commit(host.pk)
    except IntegrityError as exc:
        raise ConflictError(
            f"A host named {registration.name!r} exists.", code="already_exists"
        ) from exc
    return host


def _registration_of(host: Host) -> HostRegistration:
    return HostRegistration(
        name=host.name,
        zone=host.zone,
        libvirt_uri=host.libvirt_uri,
        storage_root=host.storage_root,
        ssh_host=host.ssh_host,
        ssh_port=host.ssh_port,
        ssh_username=host.ssh_username,
        expected_fingerprint=host.ssh_host_key_fingerprint,
        domain_type=host.domain_type,
        ovs_bridge=host.ovs_bridge,
        ovs_datapath=host.ovs_datapath,
    )


def _end_pending(host: Host, **changes: object) -> bool:
    """Leave `pending` with `changes`, if the host is still pending (another worker may have
    finished it first). True if this call did."""
    changed = Host.objects.filter(pk=host.pk, state=Host.State.PENDING).update(**changes)
    return bool(changed)


def _fail(host: Host, error: DomainError) -> str:
    worker = Actor.system("onboarding worker")
    with transaction.atomic():
        if _end_pending(
            host,
            state=Host.State.ERROR,
            state_reason=error.message[:255],
            onboarding_error_code=error.code[:40],
        ):
            _audit_refusal(worker, host.name, error, target=host)
    logger.warning("onboarding of host %s refused: %s", host.name, error.message)
    return Host.State.ERROR


def host_onboarding_run(host_id: uuid.UUID | str) -> str:
    """The worker's part (task `hosts.onboard`): reach a pending host and either stop at
    `awaiting_confirmation` (no expected key: the one seen is recorded for the operator), or
    prepare and enable it, or put it in `error` with the reason. Returns the state reached
    (or the state found, when the host was not pending: a duplicate delivery)."""
    host = Host.objects.select_related("zone").filter(pk=host_id).first()
    if host is None or host.state != Host.State.PENDING:
        return str(host.state) if host else "deleted"
    registration = _registration_of(host)
    pinned: HostKey | None = None
    if host.ssh_host:
        where = f"{host.ssh_host}:{host.ssh_port}"
        try:
            presented = _scan(host.ssh_host, host.ssh_port, host.ssh_username)
        except DriverError as exc:
            return _fail(host, _as_domain_error(exc, where, host.libvirt_uri))
        if not host.ssh_host_key_fingerprint:
            with transaction.atomic():
                if _end_pending(
                    host,
                    state=Host.State.AWAITING_CONFIRMATION,
                    state_reason="confirm the SSH host key seen",
                    ssh_host_key_seen_fingerprint=presented.fingerprint,
                    ssh_host_key_seen=f"{presented.key_type} {presented.key_base64}",
                ):
                    audit_record(
                        actor=Actor.system("onboarding worker"),
                        action="host.key_seen",
                        target=host,
                        details={"presented": presented.fingerprint},
                    )
            return Host.State.AWAITING_CONFIRMATION
        if presented.fingerprint != host.ssh_host_key_fingerprint:
            return _fail(
                host, _mismatch(where, host.ssh_host_key_fingerprint, presented.fingerprint)
            )
        pinned = presented
    try:
        prepared = _prepare(registration, pinned)
    except DomainError as exc:
        return _fail(host, exc)
    with transaction.atomic():
        locked = Host.objects.select_for_update().select_related("zone").filter(pk=host.pk).first()
        if locked is None or locked.state != Host.State.PENDING:
            return str(locked.state) if locked else "deleted"
        _record_onboarded(locked, prepared, pinned)
        audit_record(
            actor=Actor.system("onboarding worker"),
            action="host.onboard",
            target=locked,
            details=_onboarded_details(locked, locked.zone),
        )
    return Host.State.ENABLED


def host_confirm_key(*, actor: Actor, host: Host, fingerprint: str) -> Host:
    """The operator confirms the key a host presented (compared out of band): it becomes the
    pin and the host goes back to a worker to be prepared. 409 unless the host awaits
    confirmation and `fingerprint` is exactly the one seen; nothing changes then."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        if locked.state != Host.State.AWAITING_CONFIRMATION:
            raise ConflictError(
                f"Host {locked.name} is {locked.state}: there is no key to confirm.",
                code="wrong_state",
            )
        if fingerprint != locked.ssh_host_key_seen_fingerprint:
            raise ConflictError(
                f"Host {locked.name} presented {locked.ssh_host_key_seen_fingerprint}, not "
                f"{fingerprint}: nothing was confirmed. Check the host's key out of band.",
                code="host_key_mismatch",
                details={"seen": locked.ssh_host_key_seen_fingerprint, "given": fingerprint},
            )
        locked.ssh_host_key_fingerprint = locked.ssh_host_key_seen_fingerprint
        locked.ssh_host_key = locked.ssh_host_key_seen
        locked.ssh_host_key_seen_fingerprint = locked.ssh_host_key_seen = ""
        locked.state, locked.state_reason = Host.State.PENDING, ""
        locked.save()
        audit_record(
            actor=actor,
            action="host.confirm",
            target=locked,
            details={"ssh_host_key_fingerprint": locked.ssh_host_key_fingerprint},
        )
        _send_after_commit(locked.pk)
    return locked


def host_onboarding_retry(*, actor: Actor, host: Host) -> Host:
    """Send a host whose onboarding failed (`error`) to a worker again, with the same pin
    (409 `wrong_state` otherwise)."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        if locked.state != Host.State.ERROR:
            raise ConflictError(
                f"Host {locked.name} is {locked.state}: only a failed onboarding is retried.",
                code="wrong_state",
            )
        previous = (locked.onboarding_error_code, locked.state_reason)
        locked.state, locked.state_reason, locked.onboarding_error_code = (
            Host.State.PENDING,
            "",
            "",
        )
        locked.save()
        audit_record(
            actor=actor,
            action="host.retry",
            target=locked,
            details={"previous_error": previous[0], "previous_reason": previous[1]},
        )
        _send_after_commit(locked.pk)
    return locked


def host_onboarding_resend() -> list[str]:
    """Send again the onboardings of hosts pending for longer than RESEND_AFTER (the broker
    was down, or a worker died): onboarding steps are idempotent."""
    horizon = timezone.now() - RESEND_AFTER
    stale = Host.objects.filter(state=Host.State.PENDING, created_at__lt=horizon)
    return [name for pk, name in stale.values_list("pk", "name") if send_onboarding(pk)]


def host_forget(*, actor: Actor, host: Host) -> None:
    """Delete a host whose onboarding never finished (`awaiting_confirmation` or `error`: a
    wrong address, a key that will not be confirmed): nothing was placed on it. 409
    `wrong_state` for any other (an onboarded host is disabled, never deleted, here)."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        if locked.state not in (Host.State.AWAITING_CONFIRMATION, Host.State.ERROR):
            raise ConflictError(
                f"Host {locked.name} is {locked.state}: only a host whose onboarding did not "
                "finish (awaiting_confirmation, error) can be deleted.",
                code="wrong_state",
            )
        audit_record(
            actor=actor,
            action="host.delete",
            target=locked,
            details={"state": locked.state, "reason": locked.state_reason},
        )
        StoragePool.objects.filter(host=locked).delete()
        locked.delete()
