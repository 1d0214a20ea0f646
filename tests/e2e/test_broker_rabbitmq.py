"""RabbitMQ as the broker (iaas/broker.py): what an operator sees of Andromède's queues on
it, that a task accepted by the broker outlives the broker's restart, and that a delayed task
waits in the broker."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_received
from django.conf import settings

from hosts.models import Zone
from iaas.celery import CONTROL_QUEUE, app, host_queue, publish
from tests import factories
from tests.support.fault_lab import wait_for
from tests.support.metrics_scrape import present, scrape
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


def test_an_operator_reads_the_queue_depths_on_rabbitmq_in_the_metrics(
    rabbitmq_broker: PrivateRabbitMQ, make_caller: Any
):
    """/metrics asks RabbitMQ for each queue's ready messages (a passive declare): a host's
    queue with two tasks and no worker shows 2, as `rabbitmqctl` counts them; a host whose
    queue was never used is left out, and nothing is declared by asking."""
    factories.host("h42", factories.zone("fr-par-1"))
    factories.host("h43", Zone.objects.get(name="fr-par-1"))
    for _ in range(2):
        publish("operations.run_operation", args=(str(uuid.uuid4()),), queue=host_queue("h42"))
    operator = make_caller(None, operator=True)

    samples = scrape(operator)
    assert present(samples, "andromede_broker_up") == 1
    assert present(samples, "andromede_broker_queue_messages", queue=host_queue("h42")) == 2
    assert rabbitmq_broker.ready_messages(host_queue("h42")) == 2
    assert ("andromede_broker_queue_messages", (("queue", host_queue("h43")),)) not in samples
    assert host_queue("h43") not in rabbitmq_broker.queues()


def test_a_publish_after_a_broker_restart_goes_through_on_a_new_connection(
    rabbitmq_broker: PrivateRabbitMQ,
):
    """The pooled connection the broker dropped is noticed on use, and the message is sent
    once more on a new one (iaas.celery.publish), instead of waiting for the sweeper."""
    publish("operations.sweep", args=())  # the pool now holds an open connection
    rabbitmq_broker.stop()
    rabbitmq_broker.start()
    publish("operations.sweep", args=())
    assert rabbitmq_broker.ready_messages(CONTROL_QUEUE) == 2
