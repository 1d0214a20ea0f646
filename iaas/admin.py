"""The audit log in the operator admin: read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from iaas.models import AuditEvent

admin.site.site_header = "Andromède — operator admin"
admin.site.site_title = "Andromède operators"


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "action",
        "outcome",
        "actor_label",
        "tenant_id",
        "target_label",
        "request_id",
    ]
    list_filter = ["outcome", "action"]
    search_fields = [
        "action",
        "actor_label",
        "target_id",
        "target_label",
        "request_id",
        "client_request_id",
    ]
    ordering = ["-id"]

    def get_readonly_fields(self, request: HttpRequest, obj: AuditEvent | None = None) -> list[str]:
        return [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
