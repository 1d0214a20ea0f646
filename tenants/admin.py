"""Operator admin for tenants, memberships, quota limits and tokens. Changes go through the
services, so they are validated and audited like API changes. Token secrets are never stored,
so never shown; tokens can only be revoked here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from iaas.audit import Actor
from iaas.errors import DomainError
from tenants import services
from tenants.context import source_address
from tenants.models import ApiToken, Membership, Quota, Tenant


def operator_actor(request: HttpRequest) -> Actor:
    return Actor(
        user_id=request.user.pk,
        label=request.user.get_username(),
        credential="admin-session",
        source_address=source_address(request),
    )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False


class QuotaInline(admin.TabularInline):
    model = Quota
    extra = 0
    fields = ["resource", "limit", "updated_at"]
    readonly_fields = ["updated_at"]


class TenantAdminForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "slug", "status", "residency", "require_mfa"]

    def clean_residency(self) -> list[str]:
        """The same rule as the API (review M13: a lowercase "fr" silently made every
        placement fail): ISO 3166 codes, upper-cased, at least one."""
        residency = self.cleaned_data["residency"]
        if not isinstance(residency, list) or not all(isinstance(c, str) for c in residency):
            raise forms.ValidationError('A list of country codes, e.g. ["FR"].')
        try:
            return services.validate_residency(residency)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["slug", "name", "status", "residency", "created_at"]
    list_filter = ["status"]
    search_fields = ["slug", "name"]
    inlines = [QuotaInline, MembershipInline]
    readonly_fields = ["id", "created_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False  # deleting a tenant (and wiping its data and keys) is its own workflow

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            from iaas.audit import audit_record

            audit_record(
                actor=operator_actor(request),
                action="tenant.update",
                tenant_id=obj.id,
                target=obj,
                details={"changed": list(form.changed_data)},
            )
            return
        created = services.tenant_create(
            actor=operator_actor(request), name=obj.name, slug=obj.slug, residency=obj.residency
        )
        obj.pk = created.pk
        obj._state.adding = False

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Quota:
            return super().save_formset(request, form, formset, change)
        tenant = form.instance
        for quota_form in formset.forms:
            if not quota_form.has_changed() or not quota_form.cleaned_data:
                continue
            if quota_form.cleaned_data.get("DELETE"):
                continue
            try:
                services.quota_set(
                    actor=operator_actor(request),
                    tenant=tenant,
                    resource=quota_form.cleaned_data["resource"],
                    limit=quota_form.cleaned_data["limit"],
                )
            except DomainError as exc:
                messages.error(request, exc.message)
        # formset.save() is not called (the service writes the rows), but the admin's change
        # message reads what it would have set.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        return None


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    readonly_fields = ["created_at"]

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        actor = operator_actor(request)
        try:
            if change:
                services.membership_set_role(actor=actor, membership=obj, role=obj.role)
            else:
                created = services.membership_add(
                    actor=actor, tenant=obj.tenant, username=obj.user.username, role=obj.role
                )
                obj.pk = created.pk
        except DomainError as exc:
            messages.error(request, exc.message)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        try:
            services.membership_remove(actor=operator_actor(request), membership=obj)
        except DomainError as exc:
            messages.error(request, exc.message)

    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return obj is not None and super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # bulk delete would bypass the last-admin rule
        return actions


TOKEN_FIELDS: list[str] = [
    "id", "name", "key_id", "user", "tenant", "role", "created_at", "expires_at",
    "revoked_at", "last_used_at", "last_used_address",
]  # fmt: skip


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "key_id",
        "user",
        "tenant",
        "role",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["role", "tenant"]
    search_fields = ["name", "key_id", "user__username"]
    # Every field but secret_hash, all read-only (a secret is never stored, never shown).
    readonly_fields = TOKEN_FIELDS
    fields = tuple(TOKEN_FIELDS)
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # read-only; the revoke action is the only change

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            services.token_revoke(actor=operator_actor(request), token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")
