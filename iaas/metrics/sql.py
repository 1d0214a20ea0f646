"""Histograms computed by the database at scrape time, from rows that are the truth across
every process (an operation's timings, say): one aggregate per bucket, in the same query as
the count and the sum.

Counted rows must be final (a finished operation's timings never change) and never deleted,
so that every bucket, the count and the sum only ever grow, as Prometheus expects of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.db.models import Case, Count, Expression, Sum, Value, When
from django.db.models.lookups import LessThanOrEqual
from prometheus_client.core import HistogramMetricFamily


def bucket_aggregates(key: str, seconds: Expression, bounds: Sequence[float]) -> dict[str, Any]:
    """Aggregates for `.values(...).annotate(**…)`: under `key_le_<i>`, how many rows have
    `seconds` (a duration expression) at most `bounds[i]` seconds; under `key_sum`, their total.
    Rows where it is null are left out of every bucket and of the sum."""
    aggregates: dict[str, Any] = {
        f"{key}_le_{i}": Count(
            Case(When(LessThanOrEqual(seconds, timedelta(seconds=bound)), then=Value(1)))
        )
        for i, bound in enumerate(bounds)
    }
    aggregates[f"{key}_sum"] = Sum(seconds)
    return aggregates


def add_histogram(
    family: HistogramMetricFamily,
    labels: Sequence[str],
    row: Mapping[str, Any],
    key: str,
    bounds: Sequence[float],
    count: int,
) -> None:
    """One histogram of `family` from a row annotated with `bucket_aggregates(key, …)`; `count`
    is the number of rows the histogram covers (its +Inf bucket)."""
    buckets = [(_le(bound), row[f"{key}_le_{i}"]) for i, bound in enumerate(bounds)]
    buckets.append(("+Inf", count))
    total = row[f"{key}_sum"]
    family.add_metric(
        list(labels), buckets, sum_value=total.total_seconds() if total is not None else 0.0
    )


def _le(bound: float) -> str:
    return repr(float(bound))
