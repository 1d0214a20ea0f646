from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"
    verbose_name = "Networks (networks, subnets, ports, routers, security groups, floating IPs)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from network import quota_usage
        from tenants.quotas import register_resource

        register_resource("networks", quota_usage.networks_in_use)
        register_resource("subnets", quota_usage.subnets_in_use)
        register_resource("ports", quota_usage.ports_in_use)
        register_resource("routers", quota_usage.routers_in_use)
        register_resource("security_groups", quota_usage.security_groups_in_use)
        register_resource("security_group_rules", quota_usage.security_group_rules_in_use)
        register_resource("floating_ips", quota_usage.floating_ips_in_use)
