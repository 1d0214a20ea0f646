"""GET /metrics: the scrape, for allowed callers only; everyone else gets the API's 404,
the same answer as for an endpoint that does not exist, so its presence is not revealed."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from iaas.api.errors import error_response
from iaas.metrics.access import may_scrape
from iaas.metrics.registry import scrape


@csrf_exempt  # no session is used: the caller presents a bearer token, and only GET answers
def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD") or not may_scrape(request):
        return error_response(404, "not_found", "No such endpoint or resource.")
    # The classic text format (what generate_latest writes), which every Prometheus reads.
    response = HttpResponse(scrape(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
    # Figures about the whole cloud: never kept by a cache on the way.
    response["Cache-Control"] = "no-store"
    return response
