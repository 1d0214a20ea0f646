"""The OpenAPI schema tells the truth about errors (review item 12).

drf-spectacular documents what a view answers when all goes well; every operation of this API
can also answer in the one error shape (`iaas.api.errors`): a malformed request (400), no or a
bad credential (401), a role, second factor or quota that forbids it (403), an object that is
not there or not the caller's (404), a state that forbids the change (409), a body too large
(413) or of another media type (415), too many requests (429), the database unavailable for a
moment (503; both with `Retry-After`).
`AutoSchema` adds those answers to each operation, as they apply to it, with the `Error`
component as their body; tests/test_api_fuzz.py holds the API to it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from iaas.api.idempotency import HEADER, MAX_KEY_LENGTH, IdempotentCreateMixin

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

DESCRIPTIONS = {
    400: "The request is not valid (malformed JSON, unknown field or query parameter, a value "
    "out of range, a bad cursor or page size); `details` says which.",
    401: "No credential, or one that is unknown, expired or revoked.",
    403: "The credential may not do this: its role, a missing second factor, an operator-only "
    "endpoint, or a quota that would be exceeded (`quota_exceeded`).",
    404: "No such object, or it is not the caller's tenant's.",
    409: "The object's state, or another object, forbids the change (or an Idempotency-Key "
    "already used with another request).",
    413: "The request body is larger than the limit.",
    415: "The request body is not of a media type this operation accepts.",
    429: "Too many requests: wait `Retry-After` seconds (also in `details.retry_after`).",
    503: "The database is unavailable for a moment (`database_unavailable`): nothing was "
    "changed; try again after `Retry-After` seconds.",
}

RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


#: The Idempotency-Key request header, for `extend_schema(parameters=[…])` on a POST that calls
#: `iaas.api.idempotency.idempotent` itself (IdempotentCreateMixin's creates get it here).
IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=f"1 to {MAX_KEY_LENGTH} printable ASCII characters. A retry with the same key "
    "and body answers as the first request did (`Idempotent-Replayed: true`) and creates "
    "nothing more; the same key with another body is a 409.",
)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable and machine-readable: `quota_exceeded`, …")
    message = serializers.CharField(help_text="What went wrong, for a person to read.")
    details = serializers.DictField(help_text="Field errors, limits, `retry_after`, …")


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API: `{"error": {"code", "message", "details"}}`."""

    error = ErrorBodySerializer()

    class Meta:
        ref_name = "Error"


def error_response(description: str) -> OpenApiResponse:
    """An error answer for `extend_schema(responses=…)` where a view documents its own."""
    return OpenApiResponse(response=ErrorSerializer, description=description)


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, with the error answers each operation can give."""

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for status in self.error_statuses(operation):
            if str(status) in responses:
                continue
            responses[str(status)] = self._error_response(status)
        for waits in ("429", "503"):
            if waits in responses:
                responses[waits].setdefault("headers", RETRY_AFTER_HEADER)
        return operation

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        creates = self.method == "POST" and getattr(self.view, "action", None) == "create"
        if creates and isinstance(self.view, IdempotentCreateMixin):
            parameters.append(IDEMPOTENCY_KEY)
        return parameters

    def error_statuses(self, operation: dict[str, Any]) -> list[int]:
        """The error statuses this operation can answer (beyond what the view declared)."""
        authenticated = any(requirement for requirement in operation.get("security", [{}]))
        # Every request can be malformed (a bad Content-Length, an unknown query parameter
        # where filters are strict), every API view is throttled, and every one needs the
        # database.
        statuses = {400, 429, 503}
        if authenticated:
            statuses |= {401, 403}
        if "{" in self.path:
            statuses.add(404)
        if self.method in UNSAFE_METHODS and authenticated:
            statuses.add(409)
        if "requestBody" in operation:
            statuses |= {413, 415}
        return sorted(statuses)

    def _error_response(self, status: int) -> dict[str, Any]:
        component = self.resolve_serializer(ErrorSerializer, "response")
        response: dict[str, Any] = {
            "content": {"application/json": {"schema": component.ref}},
            "description": DESCRIPTIONS[status],
        }
        if status in (429, 503):
            response["headers"] = RETRY_AFTER_HEADER
        return response
