"""The API root and the health probes."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView


class ApiRootView(APIView):
    """Links to the API's collections."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        def link(name: str) -> str:
            return reverse(name, request=request)

        return Response(
            {
                "name": "Andromède API",
                "version": "v1",
                "links": {
                    "me": link("me"),
                    "tenant": link("tenant"),
                    "quotas": link("quotas"),
                    "keypairs": link("keypair-list"),
                    "tokens": link("token-list"),
                    "members": link("member-list"),
                    "audit_events": link("audit-event-list"),
                    "schema": link("schema"),
                    "docs": link("docs"),
                },
            }
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
    options = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    with app.connection_for_write(transport_options=options) as conn:
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
        except Exception as exc:
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
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
