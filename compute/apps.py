from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute (flavors, keypairs, server groups, instances)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from compute import metrics, quota_usage, selectors, worker
        from compute.services.instances import image_build_in_progress
        from hosts.residency import register_holdings
        from images.usage import register_in_use_check
        from tenants.quotas import register_resource, register_resource_group

        register_resource("keypairs", quota_usage.keypairs_in_use)
        register_resource_group(quota_usage.INSTANCE_RESOURCES, quota_usage.instance_usage)
        register_resource("server_groups", quota_usage.server_groups_in_use)
        worker.register()
        register_in_use_check(image_build_in_progress)
        register_holdings("instances", selectors.instance_holdings)
        metrics.register()
