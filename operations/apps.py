from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Operations (the outbox of every change on a host)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from operations import metrics

        metrics.register()
