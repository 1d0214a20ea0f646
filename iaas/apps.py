from django.apps import AppConfig


class IaasConfig(AppConfig):
    name = "iaas"
    verbose_name = "Andromède platform (audit log, API conventions)"
    default_auto_field = "django.db.models.BigAutoField"
