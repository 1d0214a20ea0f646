from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from images.models import Image


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    """Read-only: images are created and uploaded through the API or `manage.py image_import`
    (which inspect their files)."""

    list_display = [
        "name", "visibility", "tenant", "status", "disk_format", "size_bytes",
        "virtual_size_bytes", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "visibility", "disk_format"]
    search_fields = ["name", "checksum_sha256"]

    def get_readonly_fields(self, request: HttpRequest, obj: Image | None = None) -> list[str]:
        return [field.name for field in Image._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Image | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Image | None = None) -> bool:
        return False  # deleting goes through the service (audit, file removal)
