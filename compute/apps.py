from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute (keypairs, hosts, instances, networks, volumes)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from compute import quota_usage
        from tenants.quotas import register_resource

        register_resource("keypairs", quota_usage.keypairs_in_use)
