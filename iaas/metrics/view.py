"""GET /metrics: the scrape, for allowed callers only; everyone else gets the site's 404,
the very answer a path that does not exist gets, so its presence is not revealed."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from iaas.metrics.access import may_scrape
from iaas.metrics.registry import scrape


@csrf_exempt  # no session is used: the caller presents a bearer token, and only GET answers
def metrics(request: HttpRequest) -> HttpResponse:
    user = request.user
    if request.method not in ("GET", "HEAD") or not may_scrape(request):
        # The page any unknown path gets (handler404), rendered for the same user: the
        # access check authenticated the token on the request, which must not show.
        request.user = user
        raise Http404
    # The classic text format (what generate_latest writes), which every Prometheus reads.
    response = HttpResponse(scrape(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
    # Figures about the whole cloud: never kept by a cache on the way.
    response["Cache-Control"] = "no-store"
    return response
