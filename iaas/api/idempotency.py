"""`Idempotency-Key` for POST creates (DESIGN §10).

A retry with the same key and the same body returns the first answer (marked
`Idempotent-Replayed: true`) and creates nothing; the same key with another body is a 409.
The record is written in the same transaction as the resource, under a unique constraint, so
two concurrent requests with one key produce exactly one resource. Only successful answers
are kept: a refused request changed nothing and may be retried as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from iaas.errors import ConflictError, InvalidRequest
from iaas.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _scope(request: Any) -> str:
    context = getattr(request, "_tenant_context", None)
    tenant = str(context.tenant.pk) if context is not None else "-"
    return f"{tenant}:{request.user.pk}"


def _fingerprint(request: Any) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= MAX_KEY_LENGTH and all(33 <= ord(c) <= 126 for c in key)


def _live_record(scope: str, key: str) -> IdempotencyRecord | None:
    horizon = timezone.now() - settings.IDEMPOTENCY_TTL
    return IdempotencyRecord.objects.filter(scope=scope, key=key, created_at__gte=horizon).first()


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise ConflictError(
            "This Idempotency-Key was already used with a different request.",
            code="idempotency_key_reused",
        )
    response = Response(record.response_body, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(
    request: Any, produce: Callable[[], Response], *, unstored_fields: tuple[str, ...] = ()
) -> Response:
    """The answer to a POST that creates something, honouring its Idempotency-Key: without
    the header, `produce()`; with a key seen before, the stored answer (or 409 for another
    body); else `produce()` in a transaction with the record of its answer. Fields named in
    `unstored_fields` (a token's secret) are stored, and so replayed, as null."""
    key = request.headers.get(HEADER)
    if key is None:
        return produce()
    if not _valid_key(key):
        raise InvalidRequest(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            code="invalid_idempotency_key",
        )
    scope = _scope(request)
    fingerprint = _fingerprint(request)
    existing = _live_record(scope, key)
    if existing is not None:
        return _replay(existing, fingerprint)
    # An expired record with this key is replaced by the new answer. Only an expired one:
    # a live record committed since the lookup above is a concurrent request's answer.
    horizon = timezone.now() - settings.IDEMPOTENCY_TTL
    IdempotencyRecord.objects.filter(scope=scope, key=key, created_at__lt=horizon).delete()
    try:
        with transaction.atomic():
            response = produce()
            if 200 <= response.status_code < 300:
                stored = json.loads(JSONRenderer().render(response.data))
                for name in unstored_fields:
                    if isinstance(stored, dict) and name in stored:
                        stored[name] = None
                IdempotencyRecord.objects.create(
                    scope=scope,
                    key=key,
                    method=request.method,
                    path=request.path[:512],
                    fingerprint=fingerprint,
                    status_code=response.status_code,
                    response_body=stored,
                )
    except Exception:
        # A concurrent request with the same key may have committed first (our insert then
        # failed on the unique constraint, or the resource's own constraint fired): our
        # work was rolled back, and its answer is the answer.
        winner = _live_record(scope, key)
        if winner is not None:
            return _replay(winner, fingerprint)
        raise
    return response


class IdempotentCreateMixin:
    """Gives a viewset a `create` (POST on the list) that honours the Idempotency-Key header
    and delegates the work to `create_resource`, which calls a service and returns the 201."""

    # Fields of the answer that must never be written to the database (a token's secret):
    # they are stored, and so replayed, as null.
    idempotency_unstored_fields: tuple[str, ...] = ()

    def create_resource(self, request: Any) -> Response:
        raise NotImplementedError

    def create(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        return idempotent(
            request,
            lambda: self.create_resource(request),
            unstored_fields=self.idempotency_unstored_fields,
        )


def purge_expired() -> int:
    horizon = timezone.now() - settings.IDEMPOTENCY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=horizon).delete()
    return deleted
