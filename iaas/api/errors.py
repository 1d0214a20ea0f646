"""One error shape for the whole API (DESIGN §10):

    {"error": {"code": "quota_exceeded", "message": "…", "details": {…}}}

`api_exception_handler` is DRF's exception handler; `error_response` builds the same shape for
middleware and Django-level handlers (404, 500) so nothing under /api/ ever answers in another
shape. Refused and failed write attempts are written to the audit log here, after the
transaction of the attempt has been rolled back.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf
from rest_framework.response import Response

from iaas import errors as domain

logger = logging.getLogger(__name__)

_DOMAIN_STATUS: list[tuple[type[domain.DomainError], int]] = [
    (domain.QuotaExceeded, 403),
    (domain.PermissionDeniedError, 403),
    (domain.NotFoundError, 404),
    (domain.ConflictError, 409),
    (domain.TooLargeError, 413),
    (domain.InvalidRequest, 400),
]

DATABASE_UNAVAILABLE = "database_unavailable"
#: Seconds a client is told to wait before it retries a request refused with a 503.
RETRY_AFTER_SECONDS = 5
_DATABASE_UNAVAILABLE_MESSAGE = (
    "The service cannot reach its database right now. Retry in a few seconds; send a "
    "create again with the same Idempotency-Key, so that it is never made twice."
)


def is_database_unavailable(exc: BaseException | None) -> bool:
    """True for the errors of a database that is down, restarting or unreachable (refused
    connection, connection lost mid-query, server shutting down) — and of a statement
    cancelled by its timeout: the transaction was rolled back, so retrying is safe. Not for
    integrity or programming errors, which are bugs or conflicts."""
    return isinstance(exc, OperationalError | InterfaceError)


def database_unavailable_response() -> JsonResponse:
    """503 `database_unavailable` in the error shape, with Retry-After."""
    response = error_response(503, DATABASE_UNAVAILABLE, _DATABASE_UNAVAILABLE_MESSAGE)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "malformed_json",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JsonResponse:
    """The error shape as a plain Django response (for middleware and URL-level handlers)."""
    return JsonResponse(error_body(code, message, details), status=status)


def _validation_error(exc: drf.ValidationError) -> tuple[str, str, dict[str, Any]]:
    detail = exc.detail
    codes = exc.get_codes()
    flat_codes = set(_flatten(codes))
    if "unknown_field" in flat_codes:
        code = "unknown_field"
        message = "The request has fields this endpoint does not accept."
    elif "unknown_filter" in flat_codes:
        code = "unknown_filter"
        message = "The request has query parameters this endpoint does not accept."
    elif "invalid_cursor" in flat_codes:
        code = "invalid_cursor"
        message = "The pagination cursor is not valid; start again from the first page."
    elif "invalid_limit" in flat_codes:
        code = "invalid_limit"
        message = "The page size (limit) is not valid; see details."
    else:
        # Field-level codes (max_length, not_a_string, ...) stay in `details`: the top-level
        # code must not depend on which field rule happened to fire.
        code = "invalid"
        message = "The request is not valid; see details."
    if isinstance(detail, dict):
        details: dict[str, Any] = {key: _plain(value) for key, value in detail.items()}
    else:
        details = {"non_field_errors": _plain(detail)}
    return code, message, details


def _flatten(codes: Any) -> list[str]:
    if isinstance(codes, dict):
        return [c for value in codes.values() for c in _flatten(value)]
    if isinstance(codes, list):
        return [c for value in codes for c in _flatten(value)]
    return [str(codes)]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value)


def describe(exc: Exception) -> tuple[int, str, str, dict[str, Any]] | None:
    """(status, code, message, details) for an exception the API knows how to answer, or None
    for an unexpected one."""
    if isinstance(exc, domain.DomainError):
        for cls, status in _DOMAIN_STATUS:
            if isinstance(exc, cls):
                return status, exc.code, exc.message, exc.details
        return 400, exc.code, exc.message, exc.details
    if is_database_unavailable(exc):
        return 503, DATABASE_UNAVAILABLE, _DATABASE_UNAVAILABLE_MESSAGE, {}
    if isinstance(exc, Http404):
        return 404, "not_found", "Not found.", {}
    if isinstance(exc, DjangoPermissionDenied):
        return 403, "permission_denied", "You do not have permission to do this.", {}
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent):
        return 413, "request_too_large", "The request body is too large.", {}
    if isinstance(exc, drf.ValidationError):
        code, message, details = _validation_error(exc)
        return 400, code, message, details
    if isinstance(exc, drf.APIException):
        code = _DRF_CODES.get(type(exc), "error")
        detail_codes = exc.get_codes()
        if isinstance(detail_codes, str) and detail_codes not in {
            "error",
            "not_authenticated",
            "authentication_failed",
            "permission_denied",
            "not_found",
            "parse_error",
        }:
            code = detail_codes
        message = str(exc.detail) if not isinstance(exc.detail, dict | list) else "Error."
        api_details: dict[str, Any] = _plain(exc.detail) if isinstance(exc.detail, dict) else {}
        wait = getattr(exc, "wait", None)  # set by DRF on Throttled
        if isinstance(exc, drf.Throttled) and wait is not None:
            api_details["retry_after"] = max(1, math.ceil(wait))
        return exc.status_code, code, message, api_details
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    from iaas.audit.refusals import audit_refused_attempt

    request = context.get("request")
    view = context.get("view")
    described = describe(exc)
    details: dict[str, Any]
    if described is None:
        logger.exception("unhandled error in API view", exc_info=exc)
        status, code, message, details = (
            500,
            "internal_error",
            "An internal error occurred; it has been logged. Quote the request id to support.",
            {},
        )
    else:
        status, code, message, details = described
    response = Response(error_body(code, message, details), status=status)
    if isinstance(exc, drf.APIException):
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(max(1, math.ceil(exc.wait)))  # type: ignore[attr-defined]
    if isinstance(exc, domain.DomainError) and "retry_after" in exc.details:
        response["Retry-After"] = str(exc.details["retry_after"])
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        if code == DATABASE_UNAVAILABLE:
            # Logged, not audited: the audit log lives in the database that is down.
            logger.warning("database unavailable: %s", exc)
            return response
    if request is not None and not getattr(exc, "audited", False):
        audit_refused_attempt(request, view, status, code, message)
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception or Http404())
    return error_response(404, "not_found", "No such endpoint or resource.")


def handler500(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its `except`: the error is still the one being handled. A
    # database that went away under a middleware or a non-DRF view is a 503, never a 500.
    if is_database_unavailable(sys.exc_info()[1]):
        if not _is_api(request):
            response = HttpResponse(
                "Service temporarily unavailable; retry in a few seconds.",
                status=503,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        return database_unavailable_response()
    if not _is_api(request):
        return defaults.server_error(request)
    return error_response(
        500,
        "internal_error",
        "An internal error occurred; it has been logged. Quote the request id to support.",
    )


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception or Exception())
    return error_response(400, "bad_request", "The request could not be understood.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception or Exception())
    return error_response(403, "permission_denied", "You do not have permission to do this.")
