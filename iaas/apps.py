from django.apps import AppConfig


class IaasConfig(AppConfig):
    name = "iaas"
    verbose_name = "Andromède platform (audit log, API conventions)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from iaas.audit import admin_log  # noqa: F401 - connects the admin-write receiver
