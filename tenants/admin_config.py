"""`django.contrib.admin`'s app config, pointing at the operator admin site (kept apart from
tenants.admin_site because an app config module is imported before models can be)."""

from django.contrib.admin.apps import AdminConfig


class OperatorAdminConfig(AdminConfig):
    default_site = "tenants.admin_site.OperatorAdminSite"
