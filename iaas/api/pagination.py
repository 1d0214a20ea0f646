"""Cursor pagination for every list: stable under inserts, cost independent of depth."""

from __future__ import annotations

from typing import Any

from django.conf import settings
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
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {"limit": f"limit must be a whole number from 1 to {self.max_page_size}."},
                code="invalid_limit",
            )
        return size

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError(
                {"cursor": "This cursor is not valid."}, code="invalid_cursor"
            ) from exc


class IdCursorPagination(CreatedCursorPagination):
    """For append-only logs whose ids only grow: newest first by id."""

    ordering = ("-id",)  # type: ignore[assignment]
