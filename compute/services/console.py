"""The serial console a tenant reads is what workers pushed (M11): the internet-facing API
process opens no hypervisor connection, so it answers from this cache with the capture's age
and, when the capture is stale, only enqueues a refresh for the host's worker (it never
waits for one).

Workers push the console's tail (64 KiB) after every operation on an instance, every
CONSOLE_REFRESH_SECONDS for every instance whose console can be read (beat →
`console_refresh_all` → one task per host), and on demand (`console_request_refresh`). The
cache is the shared Redis (settings.CACHES): a lost capture is pushed again within a minute.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from compute.models import Instance
from compute.selectors import ConsoleCapture, console_cache_key
from compute.states import CONSOLE_STATUSES
from hosts.hypervisors import hypervisor_for
from hosts.models import ONBOARDED_STATES, Host
from hypervisor.base import DriverError
from iaas.celery import app, host_queue
from operations.models import Operation

logger = logging.getLogger(__name__)

#: A capture no worker refreshed for this long is dropped (its instance is gone or stopped
#: being readable long ago).
CAPTURE_TTL = timedelta(days=2)


# --- The workers' side ------------------------------------------------------------------------


def console_push(instance_id: uuid.UUID | str) -> bool:
    """Read the instance's console tail on its host and store it (a worker: it holds the
    hypervisor connection). False when there is nothing to read or the host cannot say."""
    instance = Instance.objects.select_related("host").filter(pk=instance_id).first()
    if instance is None or instance.host is None or instance.status not in CONSOLE_STATUSES:
        return False
    try:
        output = hypervisor_for(instance.host).console_output(str(instance.pk))
    except DriverError as exc:
        logger.warning("console of %s unavailable: %s", instance.pk, exc)
        return False
    captured = {"output": output, "captured_at": timezone.now().isoformat()}
    try:
        ttl = int(CAPTURE_TTL.total_seconds())
        cache.set(console_cache_key(instance.pk), captured, timeout=ttl)
    except Exception as exc:  # the next push will try again
        logger.warning("console of %s not stored: %s", instance.pk, exc)
        return False
    return True


def console_push_after_operation(operation_id: uuid.UUID | str) -> bool:
    """After an operation on an instance ends (its worker, right after running it)."""
    operation = (
        Operation.objects.filter(pk=operation_id, target_type="instance")
        .values_list("target_id", flat=True)
        .first()
    )
    return operation is not None and console_push(operation)


def console_push_host(host_name: str) -> int:
    """Push the console of every readable instance on one host (its worker). How many."""
    instances = Instance.objects.filter(
        host__name=host_name, status__in=CONSOLE_STATUSES
    ).values_list("pk", flat=True)
    return sum(console_push(pk) for pk in instances)


def console_refresh_all() -> list[str]:
    """Beat (control queue): ask each reachable host's worker to push its consoles. The
    hosts asked."""
    hosts = (
        Host.objects.filter(state__in=ONBOARDED_STATES)
        .exclude(state=Host.State.DOWN)
        .filter(instances__status__in=CONSOLE_STATUSES)
        .values_list("name", flat=True)
        .distinct()
    )
    every = float(settings.CONSOLE_REFRESH_SECONDS)
    return [name for name in hosts if _send("compute.console_push_host", [name], name, every)]


# --- The API's side: enqueue, never wait ------------------------------------------------------


def console_request_refresh(instance: Instance, capture: ConsoleCapture) -> bool:
    """If the capture is older than CONSOLE_STALE_SECONDS, put one refresh of it on the
    host's queue (at most one per instance in that window). True if one was sent."""
    if instance.host is None or instance.status not in CONSOLE_STATUSES:
        return False
    age = capture.age_seconds()
    if age is not None and age < settings.CONSOLE_STALE_SECONDS:
        return False
    try:
        if not cache.add(f"console-refresh:{instance.pk}", 1, settings.CONSOLE_STALE_SECONDS):
            return False  # one is already on its way
    except Exception as exc:
        logger.warning("console cache unavailable: %s", exc)
        return False
    return _send(
        "compute.console_push",
        [str(instance.pk)],
        instance.host.name,
        expires=max(30.0, 3 * settings.CONSOLE_STALE_SECONDS),
    )


def _send(task: str, args: list[str], host_name: str, expires: float) -> bool:
    """Send `task` to the host's queue: one connection attempt, no retry loop (a request
    must not hang on a broker that is down); False if the broker did not take it. A capture
    nobody ran within `expires` seconds is dropped (a newer one is asked for by then), so
    requests for a host whose worker is down do not pile up."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0)
            app.send_task(
                task,
                args=args,
                queue=host_queue(host_name),
                retry=False,
                expires=expires,
                connection=connection,
            )
    except Exception as exc:
        logger.warning("%s for %s not sent: %s", task, host_name, exc)
        return False
    return True
