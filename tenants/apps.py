from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants, roles, tokens and quotas"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from iaas.audit.refusals import register_attributor
        from iaas.metrics import register_caller_check
        from tenants import schema  # noqa: F401 - registers the OpenAPI bearer-token scheme
        from tenants.metrics_access import operator_token_bearer
        from tenants.refusals import attribute_refusal

        register_attributor(attribute_refusal)
        register_caller_check(operator_token_bearer)
