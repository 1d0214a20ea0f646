"""API requests by route and status, with their latency (`RequestMetricsMiddleware`).

The route label is the URL pattern that matched (`api/v1/instances/<uuid:pk>`), never the raw
path: label values stay bounded whatever clients ask for; a path that matched nothing is
`unmatched`. The method is one of the HTTP methods the API knows, else `other`.

Under gunicorn, each worker process counts its own requests: prometheus_client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set before this module is imported) keeps each
process's figures in a memory-mapped file that any process's scrape sums (registry.scrape).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics

logger = logging.getLogger(__name__)

# No `_created` series beside each histogram: multiprocess mode has none, and a scrape should
# not depend on which mode the process runs in.
disable_created_metrics()

#: Only this module's metrics: a scrape outside multiprocess mode reads them from here.
REGISTRY = CollectorRegistry()

#: Seconds: the API's answers are mostly milliseconds; uploads and slow clients reach minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)

REQUEST_SECONDS = Histogram(
    "andromede_http_request_duration_seconds",
    "API and portal requests by method, route (URL pattern) and status: their latency.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


_GROUP = re.compile(r"\(\?P<(\w+)>[^()]*\)")


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered `request`, `unmatched` if none did. DRF's routers write
    regular expressions: their named groups read as `<pk>`, without anchors."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not route:
        return UNMATCHED
    return _GROUP.sub(r"<\1>", str(route)).replace("^", "").replace("$", "").replace("\\", "")


class RequestMetricsMiddleware:
    """Times each request from the outermost middleware until its response is built (a
    streamed body, such as an image download, is not waited for)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in METHODS else "other"
        try:
            REQUEST_SECONDS.labels(method, route_of(request), str(response.status_code)).observe(
                time.perf_counter() - started
            )
        except OSError:
            # Counting must never cost the request its answer (PROMETHEUS_MULTIPROC_DIR
            # missing or full): logged, the request answered as if nothing happened.
            logger.exception("request metrics not recorded")
        return response
