"""Asking for a change to reach OVN (DESIGN §7): after the change commits, a task on the
`control` queue converges the affected objects in the northbound database (only control
workers write it, issue 10 item 8).

The resources' `status` is the outbox: a change leaves them `building` (or removes their
row), and the convergence marks them `active`, or `error` with a fault the tenant can read
while it keeps retrying. The sweeper (network.tasks.sweep) asks again for whatever stayed
`building` or `error`, and the reconciler compares everything, so a lost message or an
NB outage never leaves a network change stuck (docs/decisions.md, "Network changes converge").
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction

from network.models import Network, Router, SecurityGroup
from network.models.status import Realisation

logger = logging.getLogger(__name__)

NETWORK = "network.converge_network"
SECURITY_GROUP = "network.converge_security_group"
ROUTER = "network.converge_router"
ORPHANS = "network.remove_orphans"


def _send(task_name: str, *args: str) -> None:
    from iaas.celery import app

    try:
        with app.connection_for_write() as connection:
            # One attempt, no retry loop (as operations.services.outbox.send): with the
            # broker down the request must not hang; the sweeper asks again.
            connection.ensure_connection(max_retries=0)
            app.send_task(task_name, args=args, retry=False, connection=connection)
    except Exception as exc:
        logger.warning("%s%s not sent (%s); the network sweeper will retry", task_name, args, exc)


def ask(task_name: str, *object_ids: uuid.UUID | str) -> None:
    """Send `task_name(*object_ids)` once the caller's transaction commits."""
    args = tuple(str(object_id) for object_id in object_ids)
    transaction.on_commit(lambda: _send(task_name, *args), robust=True)


def network_changed(network: Network) -> None:
    """The network, its subnets (DHCP) or its ports changed."""
    Network.objects.filter(pk=network.pk).update(status=Realisation.BUILDING)
    ask(NETWORK, network.pk)


def network_deleted() -> None:
    ask(ORPHANS)


def security_group_changed(group: SecurityGroup) -> None:
    ask(SECURITY_GROUP, group.pk)


def security_group_deleted() -> None:
    ask(ORPHANS)


def router_changed(router: Router) -> None:
    Router.objects.filter(pk=router.pk).update(status=Realisation.BUILDING)
    ask(ROUTER, router.pk)


def router_deleted() -> None:
    ask(ORPHANS)
