from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = "Images (uploads, qemu-img checks, the image store)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from hosts.residency import register_holdings
        from images import quota_usage, selectors
        from tenants.quotas import register_resource

        register_resource("images", quota_usage.images_in_use)
        register_resource("image_gb", quota_usage.image_gb_in_use)
        register_holdings("images", selectors.image_holdings)
        register_holdings("exports", selectors.export_holdings)
