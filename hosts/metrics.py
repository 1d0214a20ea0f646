"""Hosts and the broker in /metrics, read at scrape time.

- `andromede_host_state{host,zone,state}`: 1 for the host's current state;
- `andromede_host_capacity{host,zone,resource}` and `andromede_host_allocated{…}`: for vcpus,
  memory_mb and disk_gb, what the scheduler may place ((physical - reserved) x allocation
  ratio) and what the host's allocations hold — the figures placement compares
  (compute.services.scheduler), for onboarded hosts;
- `andromede_host_heartbeat_age_seconds{host,zone}`: since the host's last heartbeat;
- `andromede_broker_up` and `andromede_broker_queue_messages{queue}`: the messages waiting in
  the control queue and each host's queue (Redis: LLEN; RabbitMQ: a passive queue declare), every
  broker call bounded by BROKER_TIMEOUT_SECONDS so a dead broker cannot hold a scrape.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from hosts.capacity import capacity_and_allocated
from hosts.models import ONBOARDED_STATES, Host
from iaas.broker import probe_transport_options
from iaas.celery import CONTROL_QUEUE, app, host_queue
from iaas.metrics import register_collector

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2


class HostsCollector:
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        labels = ["host", "zone"]
        state = GaugeMetricFamily(
            "andromede_host_state", "1 for each host's current state.", labels=[*labels, "state"]
        )
        capacity = GaugeMetricFamily(
            "andromede_host_capacity",
            "What the scheduler may place on the host: (physical - reserved) x allocation ratio.",
            labels=[*labels, "resource"],
        )
        allocated = GaugeMetricFamily(
            "andromede_host_allocated",
            "What the host's allocations hold (vcpus, memory_mb, disk_gb).",
            labels=[*labels, "resource"],
        )
        heartbeat = GaugeMetricFamily(
            "andromede_host_heartbeat_age_seconds",
            "Seconds since the host's last heartbeat.",
            labels=labels,
        )
        for host in Host.objects.select_related("zone").order_by("name"):
            names = [host.name, host.zone.name]
            state.add_metric([*names, host.state], 1)
            if host.last_heartbeat_at is not None:
                heartbeat.add_metric(names, (now - host.last_heartbeat_at).total_seconds())
            if host.state not in ONBOARDED_STATES:
                continue
            for resource, total, used in capacity_and_allocated(host):
                capacity.add_metric([*names, resource], total)
                allocated.add_metric([*names, resource], used)
        yield from (state, capacity, allocated, heartbeat)


def queue_names() -> list[str]:
    hosts = Host.objects.order_by("name").values_list("name", flat=True)
    return [CONTROL_QUEUE, *(host_queue(name) for name in hosts)]


def queue_depths(queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue of the configured broker (raises if it does not answer).
    A queue the broker has not seen yet (no message, no worker so far) is left out."""
    timeout = BROKER_TIMEOUT_SECONDS
    # Every socket bounded, in the names the broker's transport reads (as the readiness
    # probe's): Redis' socket timeouts, RabbitMQ's connect, read and write timeouts.
    options = probe_transport_options(str(app.conf.broker_read_url), timeout)
    with app.connection_for_read(connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=0, timeout=timeout)
        if conn.transport.driver_type == "amqp":
            return _amqp_queue_depths(conn, queues)
        if conn.transport.driver_type != "redis":
            return {}
        channel: Any = conn.default_channel  # kombu's transport-specific channel
        # Celery's Redis transport keeps a queue's messages in a list of the queue's name.
        pipe = channel.client.pipeline()
        for queue in queues:
            pipe.llen(queue)
        return dict(zip(queues, (int(n) for n in pipe.execute()), strict=True))


def _amqp_queue_depths(conn: Any, queues: list[str]) -> dict[str, int]:
    """RabbitMQ: a passive declare answers a queue's ready messages without creating it (the
    management plugin is not needed). A queue that does not exist closes the channel it was
    asked on, so each queue is asked on a channel of its own."""
    depths = {}
    for queue in queues:
        channel = conn.channel()
        try:
            _, messages, _ = channel.queue_declare(queue=queue, passive=True)
            depths[queue] = int(messages)
        except conn.channel_errors:
            continue  # not declared yet: nothing was ever sent to it
        finally:
            with contextlib.suppress(*conn.channel_errors, *conn.connection_errors):
                channel.close()
    return depths


class BrokerCollector:
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "andromede_broker_up", "1 if the broker answered this scrape within its timeout."
        )
        depth = GaugeMetricFamily(
            "andromede_broker_queue_messages",
            "Messages waiting in the queue (control, host.<name>).",
            labels=["queue"],
        )
        try:
            depths = queue_depths(queue_names())
        except Exception:
            logger.warning("metrics: the broker did not answer", exc_info=True)
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            for queue, messages in depths.items():
                depth.add_metric([queue], messages)
        yield from (up, depth)


def register() -> None:
    register_collector("hosts", HostsCollector())
    register_collector("broker", BrokerCollector())
