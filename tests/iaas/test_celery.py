"""The Celery app: routing to the control and host queues, and a real worker on the real
broker running a housekeeping task."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from iaas.celery import CONTROL_QUEUE, app, host_queue, publish, route_task
from iaas.models import IdempotencyRecord


class _HostRoutedTask:
    host_routed = True


def test_housekeeping_tasks_go_to_the_control_queue():
    task = app.tasks["iaas.purge_idempotency_records"]
    assert route_task(task.name, (), {}, {}, task=task) == {"queue": CONTROL_QUEUE}


def test_host_routed_tasks_go_to_their_hosts_queue():
    routed = route_task(
        "compute.run_operation", (), {"host": "fr-par-1-h01"}, {}, task=_HostRoutedTask()
    )
    assert routed == {"queue": "host.fr-par-1-h01"}


def test_a_host_routed_task_without_host_is_refused():
    with pytest.raises(ValueError, match="without a host"):
        route_task("compute.run_operation", (), {}, {}, task=_HostRoutedTask())


@pytest.mark.parametrize("bad", ["", "Host_1", "a/b", "x" * 70, "host\n"])
def test_queue_names_cannot_be_forged_from_host_names(bad):
    with pytest.raises(ValueError, match="not a valid host name"):
        host_queue(bad)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_consumes_the_control_queue_through_the_broker():
    stale = IdempotencyRecord.objects.create(
        scope="t:1", key="old", method="POST", path="/x", fingerprint="0" * 64,
        status_code=201, response_body={},
    )  # fmt: skip
    IdempotencyRecord.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    fresh = IdempotencyRecord.objects.create(
        scope="t:1", key="new", method="POST", path="/x", fingerprint="0" * 64,
        status_code=201, response_body={},
    )  # fmt: skip
    with start_worker(app, queues=[CONTROL_QUEUE], perform_ping_check=False, pool="solo"):
        app.tasks["iaas.purge_idempotency_records"].delay()
        deadline = time.monotonic() + 20
        while IdempotencyRecord.objects.filter(pk=stale.pk).exists():
            assert time.monotonic() < deadline, "the worker did not run the task in 20 s"
            time.sleep(0.2)
    assert IdempotencyRecord.objects.filter(pk=fresh.pk).exists()


def _redis(connection: Any) -> Any:
    return connection.default_channel.client  # the Redis transport's client (untyped)


def _queued(queue: str) -> int:
    with app.connection_for_write() as connection:
        return int(_redis(connection).llen(queue))


def test_publish_outlives_a_worker_that_closed_the_apps_pool_and_follows_the_broker(
    monkeypatch,
):
    """`publish` keeps its own pool: a Celery worker stopping in this process closes the
    app's pool (seen: every later create was silently not sent), and a broker URL changed
    in the configuration gets connections of its own."""
    queue = f"test-publish-{time.monotonic_ns()}"
    try:
        publish("iaas.purge_idempotency_records", args=(), queue=queue)
        pool: Any = app.pool  # celery-types says a ProducerPool: it is kombu's ConnectionPool
        pool.force_close_all()  # what a worker's shutdown does to the app's pool
        publish("iaas.purge_idempotency_records", args=(), queue=queue)
        assert _queued(queue) == 2

        dead = "redis://127.0.0.1:9/0"  # discard port: nothing listens
        monkeypatch.setenv("CELERY_BROKER_URL", dead)
        monkeypatch.setitem(app.conf, "broker_url", dead)
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017, PT011 - kombu's or redis's own error
            publish("iaas.purge_idempotency_records", args=(), queue=queue)
        assert time.monotonic() - started < 6  # one attempt, bounded by the connect timeout
        monkeypatch.undo()
        publish("iaas.purge_idempotency_records", args=(), queue=queue)
        assert _queued(queue) == 3
    finally:
        # A new app pool for the tests after this one (as tests/e2e/conftest.py resets it).
        app._pool = None  # type: ignore[attr-defined]
        app.amqp._producer_pool = None  # type: ignore[attr-defined]
        with app.connection_for_write() as connection:
            _redis(connection).delete(queue)
