"""Filters of the image APIs."""

from __future__ import annotations

import django_filters

from images.models import Export, Image


class ImageFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Image.Status.choices)
    visibility = django_filters.ChoiceFilter(choices=Image.Visibility.choices)
    disk_format = django_filters.ChoiceFilter(choices=Image.DiskFormat.choices)

    class Meta:
        model = Image
        fields = ["name", "status", "visibility", "disk_format"]


class OperatorImageFilterSet(ImageFilterSet):
    tenant = django_filters.UUIDFilter(field_name="tenant_id")

    class Meta(ImageFilterSet.Meta):
        fields = [*ImageFilterSet.Meta.fields, "tenant"]


class ExportFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Export.Status.choices)
    source_kind = django_filters.ChoiceFilter(choices=Export.SourceKind.choices)
    source_id = django_filters.UUIDFilter()

    class Meta:
        model = Export
        fields = ["status", "source_kind", "source_id"]
