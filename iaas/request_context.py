"""The current request's ids, readable anywhere in the same thread or task (logs, audit).

Two ids, kept apart (review L5): `request_id` is always ours, generated for every request
(`req-<32 hex>`), so no client can make its events or operations share an id with another's;
`client_request_id` is the `X-Request-Id` a client sent, kept beside it (when well-formed) so
the client can still correlate with its own traces.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

_request_id: ContextVar[str] = ContextVar("request_id", default="")
_client_request_id: ContextVar[str] = ContextVar("client_request_id", default="")

# A client's id is kept only if it is short and plain, so it can never smuggle a newline into
# a log line or a header.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id() -> str:
    return f"req-{uuid.uuid4().hex}"


def well_formed_client_id(candidate: str | None) -> str:
    """The client's request id when well-formed, otherwise ""."""
    if candidate and _WELL_FORMED.fullmatch(candidate):
        return candidate
    return ""


def current_request_id() -> str:
    return _request_id.get()


def current_client_request_id() -> str:
    return _client_request_id.get()


def set_request_id(value: str, client_value: str = "") -> object:
    """Set the ids for this context; returns a token for `reset_request_id`."""
    return (_request_id.set(value), _client_request_id.set(client_value))


def reset_request_id(token: object) -> None:
    server: Token[str]
    client: Token[str]
    server, client = token  # type: ignore[misc]
    _client_request_id.reset(client)
    _request_id.reset(server)
