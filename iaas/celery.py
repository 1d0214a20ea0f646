"""The Celery application.

Queues (DESIGN §4): `control` for housekeeping (sweeper, reconciler dispatch, metering) and one
`host.<name>` queue per hypervisor. A task is routed to a host queue by passing
`queue=host_queue(name)` when it is sent, or, for tasks that declare `host_routed=True`, by the
`host` keyword argument it is called with.
"""

from __future__ import annotations

import os
import re
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iaas.settings")

app = Celery("iaas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

CONTROL_QUEUE = "control"
_HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


def host_queue(host_name: str) -> str:
    """The queue consumed by the worker of hypervisor `host_name`."""
    if not _HOST_NAME.match(host_name):
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
