"""The Celery settings that depend on which broker the URL names: RabbitMQ (amqp://, amqps://)
or Redis (redis://, rediss://, redis+socket://). docs/operations.md, "The broker", says which
to choose and why.

RabbitMQ: every queue (`control` and each `host.<name>`) is a durable quorum queue, replicated
and fsynced before a publish is confirmed; publishes wait for that confirm; topic exchanges so
that a countdown (a retry's back-off) uses RabbitMQ's native delayed delivery instead of
holding an unacknowledged message in the worker, which quorum queues forbid. Redis: a
visibility timeout longer than the longest operation, after which an unacknowledged message
is delivered again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

RABBITMQ_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})

#: Seconds between AMQP heartbeats of a worker's connection: a broker or a network path that
#: died is noticed within two of them (RabbitMQ's own default is 60).
AMQP_HEARTBEAT_SECONDS = 30
#: How many times per heartbeat the worker's event loop wakes up to check it. More than
#: Celery's 3 because that wake-up also ends a wait kombu's event loop can fall into after a
#: late-acknowledged task when it reserves one message at a time (celery/celery#7718,
#: celery/kombu#1587): measured here, the next message waited 10 s (30 / 3) with the default,
#: under 1 s with 30 (a wake-up every second).
AMQP_HEARTBEAT_CHECKS_PER_HEARTBEAT = 30
#: Every read or write on a RabbitMQ socket (a publish's confirm included) gives up after this.
AMQP_SOCKET_TIMEOUT_SECONDS = 5
#: Redis: connect and socket timeouts.
REDIS_SOCKET_TIMEOUT_SECONDS = 5


def is_rabbitmq(url: str) -> bool:
    """The broker at `url` speaks AMQP (RabbitMQ)."""
    return urlsplit(url).scheme in RABBITMQ_SCHEMES


def celery_broker_conf(url: str, *, longest_operation_seconds: int) -> dict[str, Any]:
    """Celery settings (lower-case names, as `app.conf.update` takes them) for the broker at
    `url`. The same keys for both brokers, so that switching broker at run time (the fault
    tests do) replaces every one of them. `longest_operation_seconds` bounds how long a task
    may hold a message unacknowledged (acks_late) before Redis delivers it again; RabbitMQ's
    side of it is its `consumer_timeout` (scripts/rabbitmq.conf)."""
    if is_rabbitmq(url):
        return {
            "broker_transport_options": {
                "confirm_publish": True,
                "read_timeout": AMQP_SOCKET_TIMEOUT_SECONDS,
                "write_timeout": AMQP_SOCKET_TIMEOUT_SECONDS,
            },
            "broker_heartbeat": AMQP_HEARTBEAT_SECONDS,
            "broker_heartbeat_checkrate": AMQP_HEARTBEAT_CHECKS_PER_HEARTBEAT,
            "task_default_queue_type": "quorum",
            "task_create_missing_queue_type": "quorum",  # the host.<name> queues
            "task_default_exchange_type": "topic",
            "task_create_missing_queue_exchange_type": "topic",
            "task_default_delivery_mode": "persistent",
            "worker_detect_quorum_queues": True,
        }
    return {
        "broker_transport_options": {
            "visibility_timeout": longest_operation_seconds,
            "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        },
        "broker_heartbeat": 120,  # Celery's defaults; AMQP only
        "broker_heartbeat_checkrate": 3.0,
        "task_default_queue_type": "classic",
        "task_create_missing_queue_type": "classic",
        "task_default_exchange_type": "direct",
        "task_create_missing_queue_exchange_type": None,
        "task_default_delivery_mode": "persistent",
        "worker_detect_quorum_queues": True,
    }


def probe_transport_options(url: str, timeout: float) -> dict[str, Any]:
    """Transport options that bound every socket of a one-off connection (the readiness
    probe's) by `timeout` seconds, in the names the broker's transport understands."""
    if is_rabbitmq(url):
        return {"read_timeout": timeout, "write_timeout": timeout}
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout}
