"""The API root and the health probes."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, URLResolver, get_resolver, get_urlconf
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from iaas.broker import probe_transport_options

API_PREFIX = "/api/v1/"
#: Single resources that are not router collections, by URL name.
SINGLE_RESOURCES = ("me", "tenant", "quotas")

logger = logging.getLogger(__name__)


def collection_url_names(patterns: Sequence[URLPattern | URLResolver] | None = None) -> list[str]:
    """The URL names of every collection under /api/v1/: each router's list route
    (`<basename>-list`), found in the URL map itself so that no collection is left out."""
    if patterns is None:
        patterns = get_resolver(get_urlconf()).url_patterns
    names = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            names += collection_url_names(pattern.url_patterns)
        elif pattern.name and pattern.name.endswith("-list"):
            names.append(pattern.name)
    return sorted(set(names))


class ApiRootView(APIView):
    """Links to every collection of the API (`admin_…`: the operators'), the tenant's own
    resources, the schema and the docs."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        links = {}
        for name in (*SINGLE_RESOURCES, *collection_url_names()):
            path = reverse(name)
            key = path.removeprefix(API_PREFIX).replace("/", "_").replace("-", "_")
            links[key] = request.build_absolute_uri(path)
        for name in ("schema", "docs"):
            links[name] = reverse(name, request=request)
        return Response(
            {"name": "Andromède API", "version": "v1", "links": dict(sorted(links.items()))}
        )


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests; checks nothing else."""
    return JsonResponse({"status": "ok"})


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def _check_broker() -> dict[str, Any]:
    from iaas.celery import app

    timeout = settings.READINESS_TIMEOUT_SECONDS
    # One attempt, every socket bounded by the probe's timeout: kombu's default retry sleeps
    # 2 s and the broker's own timeouts are longer than a probe may take.
    options = probe_transport_options(str(app.conf.broker_write_url), timeout)
    with app.connection_for_write(connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=0, timeout=timeout)
        conn.default_channel  # noqa: B018 - opens a channel: the broker really answers
    return {"ok": True}


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: the database and the broker both answer within a few seconds."""
    checks: dict[str, Any] = {}
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        started = time.monotonic()
        try:
            checks[name] = check()
        except Exception:
            # The cause is logged, not shown: this probe answers anonymous callers (L2).
            logger.exception("readiness check %s failed", name)
            checks[name] = {"ok": False}
        checks[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    if all(check["ok"] for check in checks.values()):
        return JsonResponse({"status": "ready", "checks": checks})
    failing = [name for name, check in checks.items() if not check["ok"]]
    return JsonResponse(
        {
            "error": {
                "code": "not_ready",
                "message": f"Not ready: {', '.join(failing)} unreachable.",
                "details": checks,
            }
        },
        status=503,
    )
