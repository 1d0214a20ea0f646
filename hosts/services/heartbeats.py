"""Heartbeats: every host's facts and pool sizes refreshed from libvirt; a silent enabled
host is marked down, and enabled again when it answers."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hosts.hypervisors import hypervisor_for
from hosts.models import ONBOARDED_STATES, Host, StoragePool
from hypervisor.base import DriverError, NotFound
from iaas.audit import Actor, audit_record

logger = logging.getLogger(__name__)
GIB = 1024**3


def host_heartbeat(host_id: uuid.UUID | str) -> bool:
    """Refresh a host's facts and pool sizes from libvirt. True if the host answered. A down
    host that answers is enabled again; other states are the operator's and are kept."""
    host = Host.objects.get(pk=host_id)
    if not host.is_onboarded:
        return False  # onboarding reaches it; no heartbeat before
    try:
        hypervisor = hypervisor_for(host)
        facts = hypervisor.facts()
        pool_infos = {}
        for pool in host.storage_pools.all():
            try:
                pool_infos[pool.pk] = hypervisor.pool_info(pool.name)
            except NotFound:
                logger.warning("pool %s missing on host %s", pool.name, host.name)
    except DriverError as exc:
        Host.objects.filter(pk=host.pk).update(last_heartbeat_error=str(exc)[:500])
        logger.warning("heartbeat of host %s failed: %s", host.name, exc)
        return False
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        came_back = locked.state == Host.State.DOWN
        locked.cpus = facts.cpus
        locked.memory_mb = facts.memory_mb
        locked.cpu_model = facts.cpu_model
        locked.libvirt_version = facts.libvirt_version
        locked.hypervisor_version = facts.hypervisor_version
        locked.security_driver = facts.security_driver
        locked.last_heartbeat_at = timezone.now()
        locked.last_heartbeat_error = ""
        if came_back:
            locked.state, locked.state_reason = Host.State.ENABLED, ""
        for pool in locked.storage_pools.all():
            info = pool_infos.get(pool.pk)
            if info is not None:
                pool.capacity_bytes, pool.available_bytes = (
                    info.capacity_bytes,
                    info.available_bytes,
                )
                pool.save(update_fields=["capacity_bytes", "available_bytes"])
                if pool.role == StoragePool.Role.INSTANCES:
                    locked.disk_gb = info.capacity_bytes // GIB
        locked.save()
        if came_back:
            audit_record(actor=Actor.system("heartbeat"), action="host.up", target=locked)
    return True


def hosts_mark_down_missed() -> list[str]:
    """Mark down every enabled host whose last heartbeat is older than HOST_DOWN_AFTER.
    Returns their names."""
    horizon = timezone.now() - settings.HOST_DOWN_AFTER
    marked = []
    stale = Host.objects.filter(state=Host.State.ENABLED, last_heartbeat_at__lt=horizon)
    for host in stale:
        with transaction.atomic():
            updated = Host.objects.filter(
                pk=host.pk, state=Host.State.ENABLED, last_heartbeat_at__lt=horizon
            ).update(state=Host.State.DOWN, state_reason="missed heartbeats")
            if updated:
                audit_record(
                    actor=Actor.system("heartbeat"),
                    action="host.down",
                    target=host,
                    details={
                        "last_heartbeat_at": host.last_heartbeat_at.isoformat()
                        if host.last_heartbeat_at
                        else None
                    },
                )
                marked.append(host.name)
    return marked


def heartbeat_all() -> dict[str, list[str]]:
    """One heartbeat round: refresh every host, then mark down the silent enabled ones."""
    answered: list[str] = []
    silent: list[str] = []
    onboarded = Host.objects.filter(state__in=ONBOARDED_STATES)
    for host_id, name in onboarded.values_list("pk", "name"):
        (answered if host_heartbeat(host_id) else silent).append(name)
    return {"answered": answered, "silent": silent, "down": hosts_mark_down_missed()}
