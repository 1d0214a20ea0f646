"""Network Celery tasks (control queue): thin — each converges one object in OVN, or all
of them (the reconciler). A task whose NB is down is retried with backoff; once its retries
are spent its object shows `error` with a fault, and the reconciler goes on trying."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task

from hypervisor.base import TransientError
from network.northbound import NotConfigured
from network.services import convergence, realise

logger = logging.getLogger(__name__)
RETRIES = 5


def _converge(task: Any, kind: str, object_id: str, fn: Callable[[str], None]) -> str:
    try:
        fn(object_id)
    except NotConfigured as exc:
        logger.info("%s %s not realised: %s", kind, object_id, exc)
        return "not_configured"
    except TransientError as exc:
        if task.request.retries >= RETRIES:
            convergence.mark_error(kind, object_id, str(exc))
            raise
        raise task.retry(exc=exc, countdown=min(2**task.request.retries, 30)) from exc
    return "ok"


def _task(name: str, kind: str, fn: Callable[[str], None]) -> Any:
    @shared_task(name=name, bind=True, max_retries=RETRIES, acks_late=True)
    def converge(self: Any, object_id: str) -> str:
        return _converge(self, kind, object_id, fn)

    converge.__doc__ = fn.__doc__
    return converge


converge_network = _task(realise.NETWORK, "network", convergence.converge_network)
converge_port = _task(realise.PORT, "port", convergence.converge_port)
converge_security_group = _task(
    realise.SECURITY_GROUP, "security_group", convergence.converge_security_group
)
converge_router = _task(realise.ROUTER, "router", convergence.converge_router)
delete_network = _task(realise.DELETE_NETWORK, "network", convergence.delete_network)
delete_port = _task(realise.DELETE_PORT, "port", convergence.delete_port)
delete_security_group = _task(
    realise.DELETE_SECURITY_GROUP, "security_group", convergence.delete_security_group
)
delete_router = _task(realise.DELETE_ROUTER, "router", convergence.delete_router)


@shared_task(name="network.reconcile")
def reconcile() -> dict[str, list[str]] | str:
    """Beat: compare all of OVN with the database and repair what is ours."""
    try:
        return convergence.reconcile().as_dict()
    except NotConfigured:
        return "not_configured"
