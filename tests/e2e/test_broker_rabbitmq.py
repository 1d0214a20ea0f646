"""RabbitMQ as the broker (iaas/broker.py): what an operator sees of Andromède's queues on
it, and that a task accepted by the broker outlives the broker's restart."""

from __future__ import annotations

import uuid

import pytest

from iaas.celery import CONTROL_QUEUE, host_queue, publish
from tests.support.rabbitmq import PrivateRabbitMQ

pytestmark = pytest.mark.django_db(transaction=True)


def test_queues_are_durable_quorum_queues_whose_messages_outlive_a_broker_restart(
    rabbitmq_broker: PrivateRabbitMQ,
):
    # One task for a host's worker, one for the control workers, as the API sends them.
    publish("operations.run_operation", args=(str(uuid.uuid4()),), queue=host_queue("h42"))
    publish("operations.sweep", args=())
    sent = [host_queue("h42"), CONTROL_QUEUE]

    def observed() -> dict[str, tuple[dict[str, str], int]]:
        queues = rabbitmq_broker.queues()
        return {name: (queues[name], rabbitmq_broker.ready_messages(name)) for name in sent}

    expected = dict.fromkeys(sent, ({"type": "quorum", "durable": "true"}, 1))
    assert observed() == expected
    # publish() returned only once the broker confirmed each message: both are on disk.
    rabbitmq_broker.stop()
    rabbitmq_broker.start()
    assert observed() == expected
