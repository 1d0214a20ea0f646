"""Reading /metrics in tests as Prometheus would: parse a scrape into its samples."""

from __future__ import annotations

from typing import Any

from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape_text(caller: Any, **extra: Any) -> str:
    """One scrape by `caller` (an operator's Caller, tests/support/callers.py); must answer."""
    response = Client().get("/metrics", **caller.bearer(), **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.content.decode()


def scrape(caller: Any, **extra: Any) -> Samples:
    """{(sample name, sorted labels): value} of one scrape by `caller`."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scrape_text(caller, **extra))
        for sample in family.samples
    }


def exported_names(text: str) -> set[str]:
    """Every series name a query may use: each family's, with its type's suffixes."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value, 0 if the scrape has none (a counter not yet started)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def present(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; the scrape must have it."""
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, key
    return samples[key]
