"""Fixtures of the iaas tests that point the Celery app at another broker."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from iaas.celery import app

#: A broker of each kind at a port of a test's choosing (Redis and RabbitMQ).
BROKER_URLS = ["redis://127.0.0.1:{port}/0", "amqp://guest:guest@127.0.0.1:{port}//"]


@pytest.fixture
def broker_at(monkeypatch) -> Callable[[str], None]:
    """broker_at(url) points the already-configured Celery app at another broker for this test.

    Celery reads CELERY_BROKER_URL from the environment before its own configuration, so both
    are patched; monkeypatch restores them afterwards."""

    def point(url: str) -> None:
        monkeypatch.setenv("CELERY_BROKER_URL", url)
        monkeypatch.setitem(app.conf, "broker_url", url)
        assert app.conf.broker_write_url == url

    return point


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung broker)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
