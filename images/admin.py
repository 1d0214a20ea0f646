from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from images.models import Image, ImageStore


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


@admin.register(ImageStore)
class ImageStoreAdmin(admin.ModelAdmin):
    """Read-only: stores are declared through the operators' API (/api/v1/admin/image-stores),
    which checks the directory and audits the change."""

    list_display = ["name", "zone", "path", "enabled", "created_at"]
    list_filter = ["enabled", "zone"]

    def get_readonly_fields(self, request: HttpRequest, obj: ImageStore | None = None) -> list[str]:
        return [field.name for field in ImageStore._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ImageStore | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ImageStore | None = None) -> bool:
        return False
