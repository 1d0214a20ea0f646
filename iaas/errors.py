"""The project's own errors, raised by services and selectors.

Services never speak HTTP; the API layer maps each class to a status code (see
`iaas.api.errors`). Every error carries a stable machine-readable `code`, a message a user can
act on, and optional `details`.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: something the caller asked for cannot be done."""

    code = "error"
    # True when the service already wrote a specific audit event for this refusal, so the
    # API's generic refused-attempt event would only repeat it.
    audited = False

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class InvalidRequest(DomainError):
    """The request is well-formed but its content is not acceptable (HTTP 400)."""

    code = "invalid"


class NotFoundError(DomainError):
    """The resource does not exist or is not the caller's (HTTP 404)."""

    code = "not_found"


class ConflictError(DomainError):
    """The resource's state or an existing resource forbids the change (HTTP 409)."""

    code = "conflict"


class PermissionDeniedError(DomainError):
    """The caller is known but may not do this (HTTP 403)."""

    code = "permission_denied"


class TooLargeError(DomainError):
    """The content sent is larger than the limit (HTTP 413)."""

    code = "too_large"


class QuotaExceeded(PermissionDeniedError):
    """The change would take the tenant past one of its quota limits (HTTP 403)."""

    code = "quota_exceeded"
