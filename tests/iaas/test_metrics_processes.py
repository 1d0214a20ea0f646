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
from concurrent.futures import ThreadPoolExecutor
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


@pytest.fixture
def gunicorn(tmp_path: Path):
    """The API as `make run` serves it: gunicorn, two worker processes, multiprocess metrics."""
    database = settings.DATABASES["default"]
    env = os.environ | {
        "DATABASE_URL": (
            f"postgresql://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}"
        ),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "iaas.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "gthread", "--threads", "4"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", time.monotonic() + 60)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_every_worker_s_scrape_counts_every_worker_s_requests(gunicorn, make_caller):
    operator = make_caller(None, operator=True)
    before = healthz_count(get(f"{gunicorn}/metrics", operator.token))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: get(f"{gunicorn}/healthz"), range(REQUESTS)))
    # Several scrapes, each on its own connection: either worker may answer each of them.
    counts = {healthz_count(get(f"{gunicorn}/metrics", operator.token)) for _ in range(6)}
    assert counts == {before + REQUESTS}
