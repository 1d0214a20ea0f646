"""Shapes and filters of the image API."""

from __future__ import annotations

import django_filters
from rest_framework import serializers

from compute.models import Image
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer

MAX_MIN_DISK_GB = 64 * 1024
MAX_MIN_RAM_MB = 4 * 1024 * 1024


class ImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Image
        fields = [
            "id", "name", "disk_format", "status", "visibility", "min_disk_gb", "min_ram_mb",
            "protected", "size_bytes", "virtual_size_bytes", "checksum_sha256", "error_message",
            "created_at", "updated_at", "source_instance",
        ]  # fmt: skip
        read_only_fields = fields

    source_instance = serializers.UUIDField(
        source="source_instance_id", read_only=True, allow_null=True
    )


class OperatorImageSerializer(ImageSerializer):
    tenant = serializers.UUIDField(source="tenant_id", read_only=True, allow_null=True)

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "tenant"]
        read_only_fields = fields


class ImageCreateSerializer(StrictSerializer):
    """A tenant's image: private (public images are the operators')."""

    name = StrictCharField(max_length=128)
    disk_format = serializers.ChoiceField(choices=Image.DiskFormat.choices)
    visibility = serializers.ChoiceField(
        choices=Image.Visibility.choices, default=Image.Visibility.PRIVATE
    )
    min_disk_gb = StrictIntegerField(min_value=0, max_value=MAX_MIN_DISK_GB, default=0)
    min_ram_mb = StrictIntegerField(min_value=0, max_value=MAX_MIN_RAM_MB, default=0)


class OperatorImageCreateSerializer(ImageCreateSerializer):
    """An operator's image: public, optionally protected from deletion."""

    visibility = serializers.ChoiceField(
        choices=Image.Visibility.choices, default=Image.Visibility.PUBLIC
    )
    protected = serializers.BooleanField(default=False)


class ImageFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Image.Status.choices)
    visibility = django_filters.ChoiceFilter(choices=Image.Visibility.choices)
    disk_format = django_filters.ChoiceFilter(choices=Image.DiskFormat.choices)

    class Meta:
        model = Image
        fields = ["name", "status", "visibility", "disk_format"]


class OperatorImageFilter(ImageFilter):
    tenant = django_filters.UUIDFilter(field_name="tenant_id")

    class Meta(ImageFilter.Meta):
        fields = [*ImageFilter.Meta.fields, "tenant"]
