"""gunicorn runs several worker processes (scripts/supervise.py): with
PROMETHEUS_MULTIPROC_DIR set, as scripts/run.sh does, whichever worker answers a scrape counts
the requests every worker served — the figures do not depend on which process is asked."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote

REQUESTS = 24


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, token: str | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own server
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.read()


def wait_ready(url: str, deadline: float) -> None:
    while True:
        try:
            get(url)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def healthz_count(text: bytes) -> float:
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if (sample.name, sample.labels.get("route")) == (
                "andromede_http_request_duration_seconds_count", "healthz",
            ):  # fmt: skip
                return sample.value
    return 0.0


@contextmanager
def serving(metrics_dir: Path, workers: int) -> Iterator[str]:
    """The API as `make run` serves it: gunicorn, `workers` processes, multiprocess metrics in
    `metrics_dir`; its base URL."""
    database = settings.DATABASES["default"]
    env = os.environ | {
        "DATABASE_URL": (
            f"postgresql://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}"
        ),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "iaas.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "gthread",
         "--threads", "4", "--graceful-timeout", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", time.monotonic() + 60)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[str]:
    with serving(tmp_path, workers=2) as base:
        yield base


def test_every_worker_s_scrape_counts_every_worker_s_requests(gunicorn, make_caller):
    operator = make_caller(None, operator=True)
    before = healthz_count(get(f"{gunicorn}/metrics", operator.token))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: get(f"{gunicorn}/healthz"), range(REQUESTS)))
    # Several scrapes, each on its own connection: either worker may answer each of them.
    counts = {healthz_count(get(f"{gunicorn}/metrics", operator.token)) for _ in range(6)}
    assert counts == {before + REQUESTS}


def test_requests_are_answered_even_if_their_metrics_cannot_be_written(tmp_path, make_caller):
    # A metrics directory that does not exist (a deployment that forgot to create it):
    # counting fails, the requests do not.
    with serving(tmp_path / "missing", workers=1) as base:
        assert get(f"{base}/healthz") == b'{"status": "ok"}'
        operator = make_caller(None, operator=True)
        assert b"andromede_operations_finished" in get(f"{base}/metrics", operator.token)
