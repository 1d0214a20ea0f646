from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from compute.models import KeyPair


@admin.register(KeyPair)
class KeyPairAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "key_type", "bits", "fingerprint", "created_at"]
    list_filter = ["key_type", "tenant"]
    search_fields = ["name", "fingerprint"]

    def get_readonly_fields(self, request: HttpRequest, obj: KeyPair | None = None) -> list[str]:
        return [field.name for field in KeyPair._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tenants import their own keys

    def has_change_permission(self, request: HttpRequest, obj: KeyPair | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # No bulk "delete selected" of tenants' keys: one at a time, each audited (M10).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
