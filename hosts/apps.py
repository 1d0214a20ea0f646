from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "hosts"
    verbose_name = "Hosts (regions, zones, hypervisors, storage pools)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from hosts import metrics

        metrics.register()
