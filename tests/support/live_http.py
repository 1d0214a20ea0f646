"""Plain HTTP calls to pytest-django's `live_server`, for races that need real parallel
requests on their own connections (DESIGN §12)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer

# Django's test server queues 10 connections; the races open more at once.
ThreadedWSGIServer.request_queue_size = 128


def post_json(url: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST `body` as JSON with a bearer token: (status, decoded answer)."""
    request = urllib.request.Request(  # noqa: S310 - our live_server
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - our live_server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
