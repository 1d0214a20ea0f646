"""Filters of the operations API."""

from __future__ import annotations

import django_filters

from operations.models import Operation


class OperationFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Operation.Status.choices)
    action = django_filters.CharFilter()
    target = django_filters.UUIDFilter(field_name="target_id")

    class Meta:
        model = Operation
        fields = ["status", "action", "target"]
