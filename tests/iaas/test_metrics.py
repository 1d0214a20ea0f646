"""/metrics (issue 13): an operator's token from an internal address reads the cloud's figures
in Prometheus' text format; anyone else gets the 404 of a path that does not exist. The
figures come from what really happened: an instance created through the API and built by
the worker on libvirt's fake hypervisor shows in the operations' duration histogram, the
host's allocation and the request metrics; the audit chain's verification and the broker's
queues are there too."""

from __future__ import annotations

import io
import re
import time
import uuid

import pytest
from django.core.management import call_command
from django.test import Client

from hosts.metrics import BROKER_TIMEOUT_SECONDS
from iaas.celery import app, host_queue, publish
from operations.worker import run_operation
from tests.iaas.conftest import BROKER_URLS
from tests.support.instance_api import create
from tests.support.metrics_scrape import present, scrape, value

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_caller):
    return make_caller(None, operator=True)


def _page(response) -> str:
    """A 404 page without what differs on every request (its CSRF token, its own path)."""
    text = response.content.decode()
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", text)
    return re.sub(r'name="next" value="[^"]*"', "", text)


def assert_hidden(client, **extra) -> None:
    """`client` (with `extra`) gets for /metrics the answer a path that does not exist gets:
    nothing tells it that /metrics is there."""
    response = client.get("/metrics", **extra)
    nothing = client.get("/metricz", **extra)
    assert nothing.status_code == 404
    assert (response.status_code, response["Content-Type"]) == (404, nothing["Content-Type"])
    assert _page(response) == _page(nothing)


def test_an_operator_from_loopback_reads_the_metrics(operator):
    samples = scrape(operator)
    for collector in ("audit", "broker", "hosts", "instances", "operations"):
        assert value(samples, "andromede_metrics_collector_up", collector=collector) == 1


def test_a_tenant_member_gets_a_404(make_tenant, make_caller):
    member = make_caller(make_tenant("acme"), "admin")
    assert_hidden(Client(), **member.bearer())


def test_anonymous_and_bad_tokens_get_a_404(operator):
    assert_hidden(Client())
    assert_hidden(Client(), HTTP_AUTHORIZATION="Bearer nope")


def test_an_operator_session_without_a_token_gets_a_404(admin_client):
    assert_hidden(admin_client)


def test_an_operator_from_a_not_allowed_address_gets_a_404(operator, settings):
    # 192.0.2.0/24 is a documentation network: an address outside the allowed ones.
    assert_hidden(Client(), REMOTE_ADDR="192.0.2.10", **operator.bearer())
    settings.METRICS_ALLOWED_NETWORKS = ["192.0.2.0/24"]
    allowed = Client().get("/metrics", REMOTE_ADDR="192.0.2.10", **operator.bearer())
    assert allowed.status_code == 200
    assert_hidden(Client(), **operator.bearer())  # loopback is no longer allowed


def test_a_boot_shows_in_the_operation_host_and_request_metrics(cloud, operator):
    before = scrape(operator)
    created = create(cloud.client, cloud.image)
    assert created.status_code == 202
    assert run_operation(created.json()["operation"]["id"]) == "succeeded"
    after = scrape(operator)

    done = {"action": "instance.create", "outcome": "succeeded"}
    for name in ("andromede_operation_duration_seconds_count",
                 "andromede_operation_queued_seconds_count", "andromede_operations_finished_total",
                 "andromede_operation_duration_seconds_bucket"):  # fmt: skip
        labels = done | ({"le": "+Inf"} if name.endswith("_bucket") else {})
        assert value(after, name, **labels) == value(before, name, **labels) + 1, name
    ran = value(after, "andromede_operation_duration_seconds_sum", **done)
    assert 0 < ran < 60
    # Cumulative buckets: each one holds at least the one below it.
    buckets = sorted(
        (float(dict(labels)["le"]), count) for (name, labels), count in after.items()
        if name == "andromede_operation_duration_seconds_bucket"
        and {k: v for k, v in labels if k != "le"} == done
    )  # fmt: skip
    assert len(buckets) > 2
    assert [c for _, c in buckets] == sorted(c for _, c in buckets)

    host = {"host": "h01", "zone": "fr-par-1"}
    assert value(after, "andromede_host_allocated", **host, resource="vcpus") == 1
    assert value(after, "andromede_host_allocated", **host, resource="memory_mb") == 256
    assert value(after, "andromede_host_capacity", **host, resource="vcpus") >= 1
    assert value(after, "andromede_host_state", **host, state="enabled") == 1
    assert value(after, "andromede_instances", zone="fr-par-1", status="active") == 1
    assert present(after, "andromede_broker_up") == 1
    assert present(after, "andromede_broker_queue_messages", queue="host.h01") >= 0

    # The route is the URL pattern, never the instance's own path.
    request = {"method": "POST", "route": "api/v1/instances", "status": "202"}
    count = "andromede_http_request_duration_seconds_count"
    assert value(after, count, **request) == value(before, count, **request) + 1
    assert not any("/api/v1/instances/" in str(labels) for (_, labels) in after)
    assert not any(name.endswith("_created") for (name, _) in after)


def test_a_queued_operation_shows_as_in_progress(cloud, operator):
    created = create(cloud.client, cloud.image)
    assert created.status_code == 202
    samples = scrape(operator)
    queued = {"action": "instance.create", "status": "queued"}
    assert value(samples, "andromede_operations_in_progress", **queued) == 1
    assert value(samples, "andromede_operation_oldest_age_seconds", status="queued") > 0


def test_the_audit_chain_verification_result_and_age(operator):
    assert ("andromede_audit_chain_ok", ()) not in scrape(operator)  # never verified yet
    call_command("audit_verify", stdout=io.StringIO())
    samples = scrape(operator)
    assert present(samples, "andromede_audit_chain_ok") == 1
    assert 0 <= present(samples, "andromede_audit_chain_verified_age_seconds") < 60


def test_a_dead_broker_costs_only_its_own_figures(operator, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis+socket:///nonexistent/redis.sock")
    monkeypatch.setitem(app.conf, "broker_url", "redis+socket:///nonexistent/redis.sock")
    samples = scrape(operator)
    assert present(samples, "andromede_broker_up") == 0
    assert value(samples, "andromede_metrics_collector_up", collector="operations") == 1


@pytest.mark.parametrize("url", BROKER_URLS)
def test_a_hung_broker_holds_a_scrape_no_longer_than_its_bound(
    operator, broker_at, silent_server, url
):
    """A broker that accepts connections and never answers (Redis or RabbitMQ): the scrape
    ends within the broker's bound and says the broker is down."""
    broker_at(url.format(port=silent_server))
    started = time.monotonic()
    samples = scrape(operator)
    elapsed = time.monotonic() - started
    assert present(samples, "andromede_broker_up") == 0
    assert elapsed < BROKER_TIMEOUT_SECONDS + 1.5, f"the scrape took {elapsed:.1f} s"


def test_a_host_queue_shows_the_tasks_waiting_in_redis(cloud, operator):
    """Two more tasks sent to a host's queue with no worker: the scrape counts two more (LLEN;
    the tests' broker may hold earlier tests' tasks)."""
    queue = host_queue(cloud.host.name)
    before = present(scrape(operator), "andromede_broker_queue_messages", queue=queue)
    for _ in range(2):
        publish("operations.run_operation", args=(str(uuid.uuid4()),), queue=queue)
    after = present(scrape(operator), "andromede_broker_queue_messages", queue=queue)
    assert after == before + 2


def test_a_collector_too_slow_for_a_scrape_is_cut_and_reported(operator, settings):
    from django.db import connection

    from iaas.metrics import register_collector
    from iaas.metrics.registry import _collectors

    class Slow:
        def collect(self):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(5)")
            return []

    settings.METRICS_QUERY_TIMEOUT_MS = 200
    register_collector("slow", Slow())
    try:
        started = time.monotonic()
        samples = scrape(operator)
        assert time.monotonic() - started < 3
    finally:
        del _collectors["slow"]
    assert present(samples, "andromede_metrics_collector_up", collector="slow") == 0
    assert present(samples, "andromede_metrics_collector_up", collector="operations") == 1


def test_a_mistyped_allowed_network_stops_the_start(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from iaas.env import env_networks

    monkeypatch.setenv("ANDROMEDE_METRICS_ALLOWED_NETWORKS", "10.0.0.0/8, 10.0.0.300/32")
    with pytest.raises(ImproperlyConfigured, match="ANDROMEDE_METRICS_ALLOWED_NETWORKS"):
        env_networks("ANDROMEDE_METRICS_ALLOWED_NETWORKS", [])
    monkeypatch.setenv("ANDROMEDE_METRICS_ALLOWED_NETWORKS", "10.0.0.0/8, 192.0.2.7")
    assert env_networks("ANDROMEDE_METRICS_ALLOWED_NETWORKS", []) == ["10.0.0.0/8", "192.0.2.7"]
