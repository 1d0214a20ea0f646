"""Filtering with django-filter, refusing query parameters nobody declared: a mistyped filter
must not silently return everything."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from iaas.api.pagination import CreatedCursorPagination


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
