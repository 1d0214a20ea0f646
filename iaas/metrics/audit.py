"""The audit chain's last verification (iaas.AuditVerification): ok or broken, and its age.

No series before the first verification: the alert on a stale verification also fires when
there is none (absent()).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from iaas.models import AuditVerification


class AuditChainCollector:
    def collect(self) -> Iterator[Metric]:
        last = AuditVerification.objects.order_by("-verified_at", "-id").first()
        ok = GaugeMetricFamily(
            "andromede_audit_chain_ok",
            "1 if the audit chain's last verification found it intact, 0 if it found it broken.",
        )
        age = GaugeMetricFamily(
            "andromede_audit_chain_verified_age_seconds",
            "Seconds since the audit chain was last verified (manage.py audit_verify).",
        )
        if last is not None:
            ok.add_metric([], 1 if last.ok else 0)
            age.add_metric([], (timezone.now() - last.verified_at).total_seconds())
        yield ok
        yield age
