"""Asking for a change to reach OVN (DESIGN §7): after the change commits, a task on the
`control` queue converges the affected object in the northbound database (only control
workers write it, issue 10 item 8): network.tasks → network.services.convergence.

The resources' `status` is the outbox: a change leaves them `building` (or removes their
row), and the convergence marks them `active`, or `error` with a fault the tenant can read
while it keeps retrying. The periodic reconciler (network.tasks.reconcile) compares all of
OVN with the database and converges what differs, so a lost message or an NB outage never
leaves a change stuck (docs/decisions.md, "Network changes converge, they are not
operations").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator

from django.db import transaction

from network.models import Network, Port, Router, SecurityGroup
from network.models.status import Realisation

logger = logging.getLogger(__name__)

NETWORK = "network.converge_network"
PORT = "network.converge_port"
SECURITY_GROUP = "network.converge_security_group"
ROUTER = "network.converge_router"
DELETE_NETWORK = "network.delete_network"
DELETE_PORT = "network.delete_port"
DELETE_SECURITY_GROUP = "network.delete_security_group"
DELETE_ROUTER = "network.delete_router"


def _send(task_name: str, *args: str) -> None:
    from iaas.celery import publish

    try:
        # One attempt (publish's contract): with the broker down the request must not hang;
        # the reconciler converges it later.
        publish(task_name, args=args)
    except Exception as exc:
        logger.warning("%s%s not sent (%s); the reconciler will converge it", task_name, args, exc)


_quiet = threading.local()


@contextlib.contextmanager
def converged_by_caller() -> Iterator[None]:
    """For a caller that converges OVN itself right after (bootstrap_local_network, which
    runs before make run's broker exists): no task is sent, and no warning logged."""
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = False


def ask(task_name: str, *object_ids: uuid.UUID | str) -> None:
    """Send `task_name(*object_ids)` once the caller's transaction commits."""
    if getattr(_quiet, "on", False):
        return
    args = tuple(str(object_id) for object_id in object_ids)
    transaction.on_commit(lambda: _send(task_name, *args), robust=True)


def network_changed(network: Network) -> None:
    """The network or its subnets (DHCP) changed: its switch and every port on it."""
    Network.objects.filter(pk=network.pk).update(status=Realisation.BUILDING)
    ask(NETWORK, network.pk)


def network_removed(network_id: uuid.UUID) -> None:
    ask(DELETE_NETWORK, network_id)


def port_changed(port: Port) -> None:
    Port.objects.filter(pk=port.pk).update(status=Realisation.BUILDING)
    ask(PORT, port.pk)


def port_removed(port_id: uuid.UUID) -> None:
    ask(DELETE_PORT, port_id)


def security_group_changed(group: SecurityGroup) -> None:
    ask(SECURITY_GROUP, group.pk)


def security_group_removed(group_id: uuid.UUID) -> None:
    ask(DELETE_SECURITY_GROUP, group_id)


def router_changed(router: Router | uuid.UUID) -> None:
    router_id = router.pk if isinstance(router, Router) else router
    Router.objects.filter(pk=router_id).update(status=Realisation.BUILDING)
    ask(ROUTER, router_id)


def router_removed(router_id: uuid.UUID) -> None:
    ask(DELETE_ROUTER, router_id)
