from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"
    verbose_name = "Networks (tenant networks, ports, addresses)"
    default_auto_field = "django.db.models.BigAutoField"
