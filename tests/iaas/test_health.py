"""Health probes: /healthz says the process serves; /readyz checks the database and the broker
(the Redis named by CELERY_BROKER_URL, running for the test suite) within a bounded time."""

from __future__ import annotations

import socket
import time

import pytest
from django.test import Client, override_settings

from iaas.celery import app
from tests.iaas.conftest import BROKER_URLS

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


def test_healthz_answers_without_credentials_or_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_database_and_broker_answer():
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


# Redis, and RabbitMQ (iaas/broker.py: its transport names its timeouts differently).


@pytest.mark.parametrize("url", BROKER_URLS)
def test_readyz_names_the_broker_when_it_is_down(broker_at, closed_port, url):
    broker_at(url.format(port=closed_port))
    started = time.monotonic()
    with override_settings(READINESS_TIMEOUT_SECONDS=1):
        response = Client().get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert "broker" in error["message"]
    assert "database" not in error["message"]
    assert error["details"]["broker"]["ok"] is False
    assert "error" not in error["details"]["broker"]  # anonymous callers get no cause (L2)
    assert error["details"]["database"]["ok"] is True
    assert elapsed < 1.5, "a refused connection must fail fast, not after retries"


@pytest.mark.parametrize("url", BROKER_URLS)
def test_readyz_gives_a_hung_broker_no_more_than_its_timeout(broker_at, silent_server, url):
    broker_at(url.format(port=silent_server))
    started = time.monotonic()
    with override_settings(READINESS_TIMEOUT_SECONDS=1):
        response = Client().get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"]["details"]["broker"]["ok"] is False
    assert elapsed < 2.5, f"the probe took {elapsed:.1f}s with a 1s timeout"


def test_readyz_recovers_when_the_broker_is_back(broker_at, closed_port):
    real = app.conf.broker_url
    broker_at(f"redis://127.0.0.1:{closed_port}/0")
    assert Client().get("/readyz").status_code == 503
    broker_at(real)
    assert Client().get("/readyz").status_code == 200
