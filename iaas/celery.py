"""The Celery application.

Queues (DESIGN §4): `control` for housekeeping (sweeper, reconciler dispatch, metering) and one
`host.<name>` queue per hypervisor. A task is routed to a host queue by passing
`queue=host_queue(name)` when it is sent, or, for tasks that declare `host_routed=True`, by the
`host` keyword argument it is called with.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from kombu.connection import ConnectionPool

from celery import Celery
from iaas.request_context import (
    current_request_id,
    new_request_id,
    reset_request_id,
    set_request_id,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iaas.settings")

app = Celery("iaas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

CONTROL_QUEUE = "control"
_HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


def host_queue(host_name: str) -> str:
    """The queue consumed by the worker of hypervisor `host_name`."""
    if not _HOST_NAME.fullmatch(host_name):
        raise ValueError(f"not a valid host name for a queue: {host_name!r}")
    return f"host.{host_name}"


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str]:
    """Celery router: host-routed tasks go to their host's queue, everything else to control."""
    if task is not None and getattr(task, "host_routed", False):
        host = (kwargs or {}).get("host")
        if not host:
            raise ValueError(f"task {name} is host-routed but was sent without a host")
        return {"queue": host_queue(host)}
    return {"queue": CONTROL_QUEUE}


# --- Request ids follow work into tasks: logs of a task carry the id of the request that
# --- caused it.
@before_task_publish.connect
def _stamp_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current_request_id()
    if headers is not None and request_id:
        headers.setdefault("request_id", request_id)


_task_tokens: dict[str, object] = {}


@task_prerun.connect
def _adopt_request_id(task_id: str = "", task: Any = None, **_: Any) -> None:
    request_id = getattr(getattr(task, "request", None), "request_id", None)
    _task_tokens[task_id] = set_request_id(request_id or new_request_id())


@task_postrun.connect
def _drop_request_id(task_id: str = "", **_: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        reset_request_id(token)


#: How long a publisher waits for a free pooled broker connection (`broker_pool_limit` of
#: them per process and broker) before giving up like a dead broker.
PUBLISH_POOL_WAIT_SECONDS = 2.0
_publish_pools: dict[tuple[int, str], ConnectionPool] = {}
_publish_pools_lock = threading.Lock()


def _publish_pool() -> ConnectionPool:
    """This process's pool of connections to the broker the app is configured with now.

    Our own, not `app.pool`: a Celery worker closes the app's pool when it stops (a worker
    started in the same process, as tests do, left later publishes on a closed pool), and
    the key follows the broker URL and the process (a forked worker child never shares its
    parent's sockets)."""
    key = (os.getpid(), str(app.conf.broker_write_url))  # what connection_for_write uses
    with _publish_pools_lock:
        pool = _publish_pools.get(key)
        if pool is None:
            connection = app.connection_for_write(key[1])
            pool = _publish_pools[key] = connection.Pool(limit=app.conf.broker_pool_limit or 10)
        return pool


def publish(task_name: str, *, args: tuple[Any, ...], queue: str | None = None) -> None:
    """Send `task_name(*args)` (to `queue`, else its route) on a pooled broker connection:
    no retry loop, so that a request never hangs on a dead broker (the caller keeps what
    must be sent again: an operation's row, a network object's status). Raises on failure;
    a connection that failed is reset before it goes back to the pool.

    One exception: a pooled connection that was open may have been dropped by the broker
    since its last use (a broker restart), which shows only when it is used; then the
    message is sent once more, on a new connection. Measured on RabbitMQ: after a restart,
    the first publish on each pooled connection failed (connection reset) although the
    broker answered again.

    Pooled because a fresh connection per message cost 7 to 8 ms against 0.9 ms (measured:
    Redis over its socket, kombu declaring the queue again on each new connection), twice
    per instance create."""
    for last_try in (False, True):
        with _publish_pool().acquire(block=True, timeout=PUBLISH_POOL_WAIT_SECONDS) as connection:
            was_open = bool(connection.connected)
            try:
                connection.ensure_connection(max_retries=0)
                app.send_task(task_name, args=args, queue=queue, retry=False, connection=connection)
                return
            except Exception:
                connection.collect()
                if last_try or not was_open:
                    raise
