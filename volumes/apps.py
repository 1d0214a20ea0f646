from django.apps import AppConfig


class VolumesConfig(AppConfig):
    name = "volumes"
    verbose_name = "Volumes (volume types, volumes, attachments, snapshots)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from hosts.residency import register_holdings
        from images.usage import register_in_use_check
        from tenants.quotas import register_resource_group
        from volumes import quota_usage, selectors, worker
        from volumes.services.volumes import image_copy_in_progress

        register_resource_group(quota_usage.VOLUME_RESOURCES, quota_usage.volume_usage)
        worker.register()
        register_in_use_check(image_copy_in_progress)
        register_holdings("volumes", selectors.volume_holdings)
        register_holdings("volume_snapshots", selectors.volume_snapshot_holdings)
