"""Instances in /metrics, read at scrape time: `andromede_instances{zone,status}`, how many
instances (deleted ones aside) are in each status in each zone (`none` before placement)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric

from compute.models import Instance
from iaas.metrics import register_collector


class InstancesCollector:
    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "andromede_instances",
            "Instances by zone and status (deleted ones aside).",
            labels=["zone", "status"],
        )
        rows = (
            Instance.objects.exclude(status=Instance.Status.DELETED)
            .values("host__zone__name", "status")
            .annotate(n=Count("pk"))
            .order_by("host__zone__name", "status")
        )
        for row in rows:
            family.add_metric([row["host__zone__name"] or "none", row["status"]], row["n"])
        yield family


def register() -> None:
    register_collector("instances", InstancesCollector())
