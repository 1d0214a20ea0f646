"""Filters of the volume APIs."""

from __future__ import annotations

import django_filters

from volumes.models import Volume
from volumes.states import VolumeStatus


class VolumeFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=VolumeStatus.choices)
    volume_type = django_filters.CharFilter(field_name="volume_type__name")

    class Meta:
        model = Volume
        fields = ["name", "status", "volume_type"]
