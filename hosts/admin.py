from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from hosts.models import CephCluster, Host, OrphanReport, StoragePool, Zone
from hosts.services.hosts import host_set_state
from iaas.errors import DomainError
from tenants.admin import operator_actor


@admin.register(Zone)
class ZoneAdmin(admin.ModelAdmin):
    list_display = ["name", "region", "site", "city", "country", "jurisdiction"]
    list_filter = ["region", "jurisdiction"]

    def get_readonly_fields(self, request: HttpRequest, obj: Zone | None = None) -> list[str]:
        # A zone's jurisdiction decides where tenants' data may be placed: once hosts (and so
        # tenants' data) are in it, it cannot be changed by hand (review M10).
        if obj is not None and obj.hosts.exists():
            return ["id", "created_at", "jurisdiction"]
        return ["id", "created_at"]


class StoragePoolInline(admin.TabularInline):
    model = StoragePool
    extra = 0
    can_delete = False
    fields = ("role", "backend", "name", "path", "capacity_bytes", "available_bytes")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Host | None = None) -> bool:
        return False


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    """Hosts are onboarded with `manage.py host_add` or POST /api/v1/admin/hosts (which talk to
    the host first); here operators read them and change their state."""

    list_display = [
        "name", "zone", "state", "domain_type", "security_driver", "cpus", "memory_mb", "disk_gb",
        "last_heartbeat_at",
    ]  # fmt: skip
    list_filter = ["state", "zone", "domain_type"]
    search_fields = ["name", "libvirt_uri", "ssh_host"]
    inlines = [StoragePoolInline]
    actions = ["enable", "put_in_maintenance", "disable"]

    def get_readonly_fields(self, request: HttpRequest, obj: Host | None = None) -> list[str]:
        return [field.name for field in Host._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Host | None = None) -> bool:
        return False

    def _set_state(self, request: HttpRequest, queryset: QuerySet[Host], state: str) -> None:
        for host in queryset:
            try:
                host_set_state(
                    actor=operator_actor(request),
                    host=host,
                    state=state,
                    reason=f"set by {request.user.get_username()} in the admin",
                )
            except DomainError as exc:
                messages.error(request, f"{host.name}: {exc.message}")

    @admin.action(description="Enable selected hosts")
    def enable(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self._set_state(request, queryset, Host.State.ENABLED)

    @admin.action(description="Put selected hosts in maintenance")
    def put_in_maintenance(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self._set_state(request, queryset, Host.State.MAINTENANCE)

    @admin.action(description="Disable selected hosts")
    def disable(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self._set_state(request, queryset, Host.State.DISABLED)


@admin.register(OrphanReport)
class OrphanReportAdmin(admin.ModelAdmin):
    """What the reconciler found on hosts and the database does not know. Investigate on the
    host; delete the report once resolved (the reconciler reports it again if it is still
    there)."""

    list_display = ["kind", "name", "host", "first_seen_at", "last_seen_at"]
    list_filter = ["kind", "host"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: OrphanReport | None = None
    ) -> list[str]:
        return [field.name for field in OrphanReport._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CephCluster)
class CephClusterAdmin(admin.ModelAdmin):
    """Ceph clusters, read only: `manage.py ceph_cluster_add` declares one (it checks the
    key file), and removing one is not designed yet (its volumes hold it: PROTECT). The key
    itself is never here, only its file's path."""

    list_display = ["name", "zone", "rados_pool", "user", "key_file", "created_at"]
    list_filter = ["zone"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: CephCluster | None = None
    ) -> list[str]:
        return [field.name for field in CephCluster._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CephCluster | None = None) -> bool:
        return False
