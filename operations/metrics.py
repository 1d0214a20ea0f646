"""Operations in /metrics, computed at scrape time from the Operation rows (the outbox is the
truth across every worker, whichever process ran what):

- `andromede_operations_finished_total{action,outcome}`: finished operations (succeeded or
  failed, including those failed before they ever started);
- `andromede_operation_duration_seconds{action,outcome}`: how long those that ran took
  (started_at → finished_at; started_at is the last lease's, after a retry);
- `andromede_operation_queued_seconds{action,outcome}`: how long they waited to start
  (created_at → started_at);
- `andromede_operations_in_progress{action,status}` and
  `andromede_operation_oldest_age_seconds{status}`: what is queued or running now, and the
  oldest of each (since created for queued, since started for running) — the "stuck" alert.

Only finished rows feed the histograms and the counter: their timings never change and
operations are never deleted, so these only grow. Each scrape reads the whole table once
(one grouped query): 0.5 s for 500 000 operations here, bounded by METRICS_QUERY_TIMEOUT_MS.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from iaas.metrics import register_collector
from iaas.metrics.sql import add_histogram, bucket_aggregates
from operations.models import Operation

DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
QUEUED_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
FINISHED = (Operation.Status.SUCCEEDED, Operation.Status.FAILED)
IN_PROGRESS = (Operation.Status.QUEUED, Operation.Status.RUNNING)


def _between(start: str, end: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


RAN = _between("started_at", "finished_at")
WAITED = _between("created_at", "started_at")


class OperationsCollector:
    def collect(self) -> Iterator[Metric]:
        yield from self._finished()
        yield from self._in_progress()

    def _finished(self) -> Iterator[Metric]:
        labels = ["action", "outcome"]
        finished = CounterMetricFamily(
            "andromede_operations_finished",
            "Finished operations by action and outcome (succeeded, failed).",
            labels=labels,
        )
        duration = HistogramMetricFamily(
            "andromede_operation_duration_seconds",
            "How long finished operations ran, from their start to their end.",
            labels=labels,
        )
        queued = HistogramMetricFamily(
            "andromede_operation_queued_seconds",
            "How long finished operations waited, from their creation to their start.",
            labels=labels,
        )
        rows = (
            Operation.objects.filter(status__in=FINISHED)
            .values("action", "status")
            .annotate(
                total=Count("pk"),
                ran=Count("started_at"),  # those that started (not null)
                **bucket_aggregates("duration", RAN, DURATION_BUCKETS),
                **bucket_aggregates("queued", WAITED, QUEUED_BUCKETS),
            )
            .order_by("action", "status")
        )
        for row in rows:
            names = (row["action"], row["status"])
            finished.add_metric(names, row["total"])
            add_histogram(duration, names, row, "duration", DURATION_BUCKETS, row["ran"])
            add_histogram(queued, names, row, "queued", QUEUED_BUCKETS, row["ran"])
        yield from (finished, duration, queued)

    def _in_progress(self) -> Iterator[Metric]:
        now = timezone.now()
        current = GaugeMetricFamily(
            "andromede_operations_in_progress",
            "Operations queued or running now, by action.",
            labels=["action", "status"],
        )
        rows = (
            Operation.objects.filter(status__in=IN_PROGRESS)
            .values("action", "status")
            .annotate(
                n=Count("pk"), oldest_created=Min("created_at"), oldest_started=Min("started_at")
            )
            .order_by("action", "status")
        )
        oldest: dict[str, float] = dict.fromkeys(IN_PROGRESS, 0.0)
        for row in rows:
            current.add_metric([row["action"], row["status"]], row["n"])
            since = row["oldest_started" if row["status"] == "running" else "oldest_created"]
            if since is not None:
                oldest[row["status"]] = max(oldest[row["status"]], (now - since).total_seconds())
        age = GaugeMetricFamily(
            "andromede_operation_oldest_age_seconds",
            "Age of the oldest queued operation (since created) and of the oldest running one "
            "(since started); 0 when there is none.",
            labels=["status"],
        )
        for status, seconds in oldest.items():
            age.add_metric([str(status)], seconds)
        yield from (current, age)


def register() -> None:
    register_collector("operations", OperationsCollector())
