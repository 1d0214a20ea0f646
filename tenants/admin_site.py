"""The operator admin site: operators only, each signed in with a second factor.

Installed in place of `django.contrib.admin` (INSTALLED_APPS names
`tenants.admin_config.OperatorAdminConfig`), so every `admin.register` in the project lands
here."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from tenants.forms import OperatorSignInForm


class OperatorAdminSite(admin.AdminSite):
    """Django's admin, entered only by an active staff account whose session passed its second
    factor (an operator who has not enrolled yet enrols through the API first: docs/api.md)."""

    login_form = OperatorSignInForm

    def has_permission(self, request: HttpRequest) -> bool:
        from tenants.mfa import session_verified

        return super().has_permission(request) and session_verified(request)
