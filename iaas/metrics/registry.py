"""The collectors a scrape runs, filled by each app's `AppConfig.ready()`.

A collector is any object with `collect()` yielding prometheus_client metric families; ours
read the database at scrape time (operations, hosts, the audit chain), so their figures are
the truth across every process. One collector failing (a broker that does not answer) costs
only its own families: the scrape still answers, and `andromede_metrics_collector_up` says
which collector failed. A collector's queries are bounded (METRICS_QUERY_TIMEOUT_MS), so a
table grown too large for a scrape fails that collector instead of holding the scrape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from django.conf import settings
from django.db import connection, transaction
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from iaas.metrics import api_requests

logger = logging.getLogger(__name__)


_collectors: dict[str, Collector] = {}


def register_collector(name: str, collector: Collector) -> None:
    """Add `collector` under `name`. Registering the same name again replaces it (an app's
    `ready()` may run twice in tests)."""
    _collectors[name] = collector


def collector_names() -> list[str]:
    return sorted(_collectors)


class _Registered:
    """Every registered collector, each guarded, and whether each one answered."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "andromede_metrics_collector_up",
            "1 if the collector answered at this scrape, 0 if it failed (see the API's log).",
            labels=["collector"],
        )
        for name in collector_names():
            try:
                families = _bounded(_collectors[name])
            except Exception:
                logger.exception("metrics collector %s failed", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def _bounded(collector: Collector) -> list[Metric]:
    """The collector's families, its queries each cut at METRICS_QUERY_TIMEOUT_MS (in its own
    transaction, so a cancelled query costs only this collector)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    [str(settings.METRICS_QUERY_TIMEOUT_MS)],
                )
        return list(collector.collect())


def multiprocess_dir() -> str | None:
    """gunicorn's workers share their request metrics through files in this directory
    (prometheus_client's multiprocess mode; scripts/run.sh empties it at start)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape() -> bytes:
    """The text exposition of one scrape: the request metrics (of every process in
    multiprocess mode, else of this one) and every registered collector."""
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if not directory:
        registry.register(api_requests.REGISTRY)
    elif os.path.isdir(directory):
        MultiProcessCollector(registry, path=directory)
    else:  # the request metrics are lost (api_requests logs it); the others still answer
        logger.error("PROMETHEUS_MULTIPROC_DIR %s is not a directory", directory)
    registry.register(_Registered())
    return generate_latest(registry)
