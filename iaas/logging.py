"""JSON structured logging: one JSON object per line, each carrying the request id."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from iaas.request_context import current_client_request_id, current_request_id

# Anything that looks like one of our API tokens, or a bearer credential, never reaches a log.
_SECRET_PATTERNS = [
    re.compile(r"andr_[A-Za-z0-9]+_[A-Za-z0-9_-]+"),
    re.compile(r"(?i)(bearer\s+)[^\s\"']+"),
]
REDACTED = "[redacted]"


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.groups() else "") + REDACTED,
            text,
        )
    return text


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # django.request logs after the middleware returned: read the id off the request.
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", "") or current_request_id()
        if not getattr(record, "client_request_id", None):
            request = getattr(record, "request", None)
            client_id = getattr(request, "client_request_id", "") or current_client_request_id()
            if client_id:  # only when the client sent one: most lines have none
                record.client_request_id = client_id
        return True


class RedactSecretsFilter(logging.Filter):
    """Defence in depth: the code never logs secrets, and this filter masks any that slip in."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    # Attributes every LogRecord has; anything else passed via `extra=` is logged as a field.
    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {
        "message",
        "asctime",
        "request_id",
    }

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or current_request_id(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, ensure_ascii=False, default=str))
