"""Filtering with django-filter, refusing query parameters nobody declared: a mistyped filter
must not silently return everything."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from iaas.api.pagination import CreatedCursorPagination

# RFC 3339: a date, a time and an offset (`Z` or ±hh:mm). A `+` in a query string must be sent
# as %2B (a bare `+` reads as a space).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request: Any, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        allowed = set(CreatedCursorPagination.query_params)
        allowed |= set(getattr(view, "extra_query_params", ()))
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ValidationError(
                dict.fromkeys(unknown, "Unknown query parameter.") | {"allowed": sorted(allowed)},
                code="unknown_filter",
            )
        return super().filter_queryset(request, queryset, view)


class _StrictBooleanField(forms.Field):
    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if value in ("true", "false"):
            return value == "true"
        raise DjangoValidationError('Must be "true" or "false".', code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    """`true` or `false`, nothing else: django-filter's own reads any other value (`1`,
    `yes`, a typo) as "no filter" and answers everything."""

    field_class = _StrictBooleanField


class _Rfc3339DateTimeField(forms.Field):
    def to_python(self, value: Any) -> datetime | None:
        if value in (None, ""):
            return None
        parsed = None
        if isinstance(value, str) and _RFC3339.match(value):
            try:
                parsed = parse_datetime(value)
            except ValueError:  # 2026-02-30T…, 24:00, an offset of 99 hours
                parsed = None
        if parsed is None:
            raise DjangoValidationError(
                "Give a date, a time and its offset (RFC 3339), such as 2026-12-01T09:00:00Z "
                "or 2026-12-01T10:00:00%%2B01:00 (a `+` is %%2B in a query string).",
                code="invalid",
            )
        # In UTC: PostgreSQL refuses offsets beyond ±15:59 (RFC 3339 allows up to ±23:59),
        # and a date at the edge of the calendar may have no UTC equivalent at all.
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise DjangoValidationError("This date-time is out of range.", code="invalid") from exc


class StrictIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An RFC 3339 date-time, as the schema says, offset included: django-filter's own also
    takes a bare date or a time without offset (read in the server's time zone)."""

    field_class = _Rfc3339DateTimeField
