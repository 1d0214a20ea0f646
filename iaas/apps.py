from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IaasConfig(AppConfig):
    name = "iaas"
    verbose_name = "Andromède platform (audit log, API conventions)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from iaas.audit import admin_log  # noqa: F401 - connects the admin-write receiver
        from iaas.db_roles import grant_after_migrate
        from iaas.metrics import register_collector
        from iaas.metrics.audit import AuditChainCollector

        register_collector("audit", AuditChainCollector())

        # Once per migrate (sender: this app), after every app's migrations: new tables
        # get the runtime role's grants (ANDROMEDE_DATABASE_RUNTIME_ROLE).
        post_migrate.connect(grant_after_migrate, sender=self, dispatch_uid="iaas.db_roles")
