"""The current request's id, readable anywhere in the same thread or task (logs, audit)."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

_request_id: ContextVar[str] = ContextVar("request_id", default="")

# A client may send its own X-Request-Id; we keep it only if it is short and plain, so it can
# never smuggle a newline into a log line or a header.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id() -> str:
    return f"req-{uuid.uuid4().hex}"


def accept_or_new(candidate: str | None) -> str:
    """The client's request id when well-formed, otherwise a fresh one."""
    if candidate and _WELL_FORMED.fullmatch(candidate):
        return candidate
    return new_request_id()


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str) -> object:
    """Set the id for this context; returns a token for `reset_request_id`."""
    return _request_id.set(value)


def reset_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]
