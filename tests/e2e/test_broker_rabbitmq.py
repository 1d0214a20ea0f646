"""RabbitMQ as the broker (iaas/broker.py): what an operator sees of Andromède's queues on
it, that a task accepted by the broker outlives the broker's restart, and that a delayed task
waits in the broker."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_received
from django.conf import settings

from iaas.celery import CONTROL_QUEUE, app, host_queue, publish
from tests.support.fault_lab import wait_for
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


def test_a_task_sent_with_a_countdown_waits_in_rabbitmq_not_in_a_worker(
    rabbitmq_broker: PrivateRabbitMQ,
):
    """A retry's back-off (network convergence) must not sit unacknowledged in a worker:
    quorum queues give a worker one message at a time, which a held message would block."""
    received: list[float] = []

    def on_received(**_: object) -> None:
        received.append(time.monotonic())

    task_received.connect(on_received, weak=False)
    try:
        # The worker declares RabbitMQ's delayed-delivery exchanges and binds its queues.
        with start_worker(app, queues=[CONTROL_QUEUE], pool="solo", perform_ping_check=False):
            sent = time.monotonic()
            app.send_task("operations.sweep", countdown=1)
            assert rabbitmq_broker.ready_messages(CONTROL_QUEUE) == 0
            assert rabbitmq_broker.ready_messages("celery_delayed_0") == 1  # 1 s = level 0
            wait_for(lambda: received, 10, "the worker to receive the task")
    finally:
        task_received.disconnect(on_received)
    assert received[0] - sent >= 0.9, "the worker got the task before its countdown ended"


def test_the_node_lets_a_worker_hold_a_task_longer_than_the_longest_operation(
    private_rabbitmq: PrivateRabbitMQ,
):
    """Workers acknowledge a task once it has run: RabbitMQ must not take it back sooner."""
    answer = private_rabbitmq.ctl("eval", "application:get_env(rabbit, consumer_timeout).")
    found = re.fullmatch(r"\{ok,(\d+)\}", answer.strip())  # scripts/rabbitmq.conf's value
    assert found, answer
    assert int(found[1]) > settings.LONGEST_OPERATION_SECONDS * 1000
