"""Request-wide middleware: request ids and the body size limit."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from iaas.api.errors import error_response
from iaas.request_context import (
    new_request_id,
    reset_request_id,
    set_request_id,
    well_formed_client_id,
)


class RequestIdMiddleware:
    """Give every request an id of ours, expose it to logs, the audit log and operations
    through a context variable, and return it as `X-Request-Id`. A well-formed `X-Request-Id`
    the client sent is kept apart (`client_request_id`, echoed as `X-Client-Request-Id`):
    a client chooses its own ids, never ours (review L5)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = new_request_id()
        client_id = well_formed_client_id(request.headers.get("X-Request-Id"))
        request.request_id = request_id  # type: ignore[attr-defined]
        request.client_request_id = client_id  # type: ignore[attr-defined]
        token = set_request_id(request_id, client_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response["X-Request-Id"] = request_id
        if client_id:
            response["X-Client-Request-Id"] = client_id
        return response


class BodySizeLimitMiddleware:
    """Refuse API bodies larger than API_MAX_BODY_BYTES before anything reads them.

    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE also guards body reads (for chunked bodies with no
    Content-Length); this answers early and in the API's error shape. Paths matching
    API_BODY_LIMIT_EXEMPT_PATHS (image uploads, streamed to disk with their own limit) pass.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        exempt = getattr(settings, "API_BODY_LIMIT_EXEMPT_PATHS", ())
        if any(re.match(pattern, request.path_info) for pattern in exempt):
            return self.get_response(request)
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return error_response(400, "invalid_content_length", "Content-Length is not a number.")
        limit = settings.API_MAX_BODY_BYTES
        if length > limit:
            return error_response(
                413,
                "request_too_large",
                f"The request body is {length} bytes; the limit is {limit} bytes.",
                {"limit_bytes": limit},
            )
        return self.get_response(request)
