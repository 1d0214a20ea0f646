"""Cursor pagination for every list: stable under inserts, cost independent of depth."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Newest first. `?limit=` sets the page size (1 to API_MAX_PAGE_SIZE); `next` and
    `previous` are full URLs carrying an opaque cursor."""

    ordering = ("-created_at", "-pk")
    page_size_query_param = "limit"
    max_page_size = settings.API_MAX_PAGE_SIZE
    query_params = ("cursor", "limit")

    def get_page_size(self, request: Any) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # ASCII digits only: int() would also take " 5", "5_0" and other scripts' digits.
        size = int(raw) if raw.isascii() and raw.isdigit() else 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {"limit": f"limit must be a whole number from 1 to {self.max_page_size}."},
                code="invalid_limit",
            )
        return size

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self._position_field = queryset.model._meta.get_field(self.ordering[0].lstrip("-"))
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Any) -> Any:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is not None and not _well_formed(encoded):
            raise _invalid_cursor()
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise _invalid_cursor() from exc
        if cursor is not None and cursor.position is not None:
            self._check_position(cursor.position)
        return cursor

    def _check_position(self, position: object) -> None:
        """Cursors are opaque but not signed: a forged position must be a 400, not a database
        error. Positions this class writes are values of the first ordering field (aware
        datetimes for created_at)."""
        try:
            value = self._position_field.to_python(position)
        except DjangoValidationError as exc:
            raise _invalid_cursor() from exc
        if isinstance(value, datetime) and timezone.is_naive(value):
            raise _invalid_cursor()


def _well_formed(encoded: str) -> bool:
    """Strict base64 of the querystring DRF writes (o=offset, r=reverse, p=position): DRF's
    lenient decoding would read most garbage as "the first page"."""
    try:
        text = base64.b64decode(encoded, validate=True).decode("ascii")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return False
    keys = set(parse_qs(text, keep_blank_values=True))
    return bool(keys) and keys <= {"o", "r", "p"}


def _invalid_cursor() -> ValidationError:
    return ValidationError({"cursor": "This cursor is not valid."}, code="invalid_cursor")


class IdCursorPagination(CreatedCursorPagination):
    """For append-only logs whose ids only grow: newest first by id."""

    ordering = ("-id",)  # type: ignore[assignment]
