"""Onboarding a hypervisor host over SSH and libvirt.

Onboarding talks to the host before it writes anything: the SSH host key is pinned (the
operator's expected fingerprint, or the one first seen, which the operator confirms), the
storage directories are made over SSH, libvirt must answer at the URI, the domain type is
probed, the pools are ensured. Only then is the host recorded, with its audit event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hosts import naming
from hosts.hypervisors import hypervisor_for_uri, ssh_endpoint
from hosts.models import Host, StoragePool, Zone
from hypervisor.base import DriverError, Hypervisor, PoolSpec, TransientError
from hypervisor.ssh import (
    HostKeyMismatch,
    SshAuthenticationFailed,
    SshUnreachable,
    open_session,
    scan_host_key,
)
from iaas.audit import Actor, audit_record
from iaas.celery import host_queue
from iaas.errors import ConflictError, InvalidRequest

logger = logging.getLogger(__name__)

POOL_ROLES = (StoragePool.Role.IMAGES, StoragePool.Role.INSTANCES, StoragePool.Role.VOLUMES)
GIB = 1024**3


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


def _refuse(
    actor: Actor, registration: HostRegistration, error: InvalidRequest | ConflictError
) -> None:
    """Audit a refused onboarding, then raise it (the error carries `audited`)."""
    audit_record(
        actor=actor,
        action="host.onboard",
        target_type="host",
        target_label=registration.name,
        outcome="refused",
        details={"code": error.code, "message": error.message, **error.details},
    )
    error.audited = True
    raise error


def _pin_and_prepare_over_ssh(actor: Actor, registration: HostRegistration) -> str:
    """Pin the host key and create the storage directories. Returns the fingerprint."""
    endpoint = ssh_endpoint(registration.ssh_host, registration.ssh_port, registration.ssh_username)
    where = f"{registration.ssh_host}:{registration.ssh_port}"
    try:
        presented = scan_host_key(endpoint, timeout=settings.SSH_CONNECT_TIMEOUT_SECONDS)
        expected = registration.expected_fingerprint or presented
        if presented != expected:
            _refuse(
                actor,
                registration,
                ConflictError(
                    f"The SSH host key of {where} is {presented}, not the expected {expected}. "
                    "Verify the host's key out of band before onboarding it.",
                    code="host_key_mismatch",
                    details={"expected": expected, "presented": presented},
                ),
            )
        dirs = [f"{registration.storage_root}/{role}" for role in POOL_ROLES]
        with open_session(
            endpoint, expected, connect_timeout=settings.SSH_CONNECT_TIMEOUT_SECONDS
        ) as session:
            session.check_run(
                ["mkdir", "-p", "--", *dirs], timeout=settings.SSH_COMMAND_TIMEOUT_SECONDS
            )
    except HostKeyMismatch as exc:  # changed between the scan and the session
        _refuse(
            actor,
            registration,
            ConflictError(
                str(exc),
                code="host_key_mismatch",
                details={"expected": exc.expected, "presented": exc.presented},
            ),
        )
    except SshUnreachable as exc:
        _refuse(actor, registration, InvalidRequest(str(exc), code="host_unreachable"))
    except SshAuthenticationFailed as exc:
        _refuse(
            actor,
            registration,
            InvalidRequest(
                f"{where} refused the control plane's SSH key: {exc}. Install the public key "
                f"of {settings.SSH_PRIVATE_KEY} in the host's authorized_keys.",
                code="ssh_authentication_failed",
            ),
        )
    except DriverError as exc:
        _refuse(actor, registration, InvalidRequest(f"{where}: {exc}", code="host_setup_failed"))
    return presented


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


def host_onboard(*, actor: Actor, registration: HostRegistration) -> Host:
    """Onboard a host as described in the module docstring; refusals are audited."""
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
    if Host.objects.filter(name=registration.name).exists():
        raise ConflictError(f"A host named {registration.name!r} exists.", code="already_exists")
    fingerprint = ""
    if registration.ssh_host:
        fingerprint = _pin_and_prepare_over_ssh(actor, registration)
    try:
        hypervisor = hypervisor_for_uri(registration.libvirt_uri)
        facts = hypervisor.facts()
        domain_type = _choose_domain_type(hypervisor, facts.domain_types, registration.domain_type)
        pools = {}
        for role in POOL_ROLES:
            spec = PoolSpec(
                name=naming.storage_pool(registration.name, role),
                path=f"{registration.storage_root}/{role}",
            )
            hypervisor.ensure_pool(spec)
            pools[role] = (spec, hypervisor.pool_info(spec.name))
    except InvalidRequest as exc:
        _refuse(actor, registration, exc)
        raise  # unreachable: _refuse raises
    except DriverError as exc:
        _refuse(
            actor,
            registration,
            InvalidRequest(
                f"libvirt at {registration.libvirt_uri} did not answer as expected: {exc}",
                code="libvirt_unreachable" if isinstance(exc, TransientError) else "libvirt_error",
            ),
        )
        raise  # unreachable
    instances_pool = pools[StoragePool.Role.INSTANCES][1]
    try:
        with transaction.atomic():
            host = Host.objects.create(
                name=registration.name,
                zone=registration.zone,
                libvirt_uri=registration.libvirt_uri,
                ssh_host=registration.ssh_host,
                ssh_port=registration.ssh_port,
                ssh_username=registration.ssh_username,
                ssh_host_key_fingerprint=fingerprint,
                storage_root=registration.storage_root,
                domain_type=domain_type,
                arch=facts.arch,
                cpu_model=facts.cpu_model,
                cpus=facts.cpus,
                memory_mb=facts.memory_mb,
                disk_gb=instances_pool.capacity_bytes // GIB,
                libvirt_version=facts.libvirt_version,
                hypervisor_version=facts.hypervisor_version,
                domain_types=list(facts.domain_types),
                security_driver=facts.security_driver,
                state=Host.State.ENABLED,
                last_heartbeat_at=timezone.now(),
            )
            for role, (spec, info) in pools.items():
                StoragePool.objects.create(
                    host=host,
                    role=role,
                    name=spec.name,
                    path=spec.path,
                    capacity_bytes=info.capacity_bytes,
                    available_bytes=info.available_bytes,
                )
            audit_record(
                actor=actor,
                action="host.create",
                target=host,
                details={
                    "zone": registration.zone.name,
                    "libvirt_uri": registration.libvirt_uri,
                    "ssh_host_key_fingerprint": fingerprint,
                    "domain_type": domain_type,
                    "cpus": facts.cpus,
                    "memory_mb": facts.memory_mb,
                    "security_driver": facts.security_driver,
                },
            )
    except IntegrityError as exc:
        raise ConflictError(
            f"A host named {registration.name!r} exists.", code="already_exists"
        ) from exc
    return host
