"""Hosts, zones, regions, storage pools, orphan reports, operations, images, tenant networks
and ports now live in their own apps (hosts, operations, images, network), which took them
over in their 0001 migrations with their tables unchanged: compute lets go of them in
Django's state only, and its remaining foreign keys point at hosts.Host. Content types (and so
permissions and admin history) follow the models to their new apps.

An instance's task state gets its choices (compute.states); no column changes."""

import django.db.models.deletion
from django.db import migrations, models

MOVED = {
    "hosts": ["region", "zone", "host", "storagepool", "orphanreport"],
    "operations": ["operation"],
    "images": ["image"],
    "network": ["tenantnetwork", "port"],
}


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for app_label, models_ in MOVED.items():
        for model in models_:
            old = ContentType.objects.filter(app_label="compute", model=model).first()
            if old is None:
                continue  # a new database: post_migrate creates them under their new app
            # Migrated in two runs (`migrate hosts`, then `migrate`), the first run's
            # post_migrate already made an empty content type for the new app: the old one
            # carries the permissions granted and the admin history, so it wins.
            ContentType.objects.filter(app_label=app_label, model=model).delete()
            ContentType.objects.filter(pk=old.pk).update(app_label=app_label)


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for app_label, models_ in MOVED.items():
        ContentType.objects.filter(app_label=app_label, model__in=models_).update(
            app_label="compute"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0013_port_device_id_required"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("hosts", "0001_initial"),
        ("images", "0001_initial"),
        ("network", "0001_initial"),
        ("operations", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name="host",
                    name="zone",
                ),
                migrations.AlterField(
                    model_name="instance",
                    name="host",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="instances",
                        to="hosts.host",
                    ),
                ),
                migrations.RemoveField(
                    model_name="orphanreport",
                    name="host",
                ),
                migrations.AlterField(
                    model_name="allocation",
                    name="host",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="allocations",
                        to="hosts.host",
                    ),
                ),
                migrations.RemoveField(
                    model_name="image",
                    name="tenant",
                ),
                migrations.RemoveField(
                    model_name="operation",
                    name="tenant",
                ),
                migrations.RemoveField(
                    model_name="port",
                    name="network",
                ),
                migrations.RemoveField(
                    model_name="zone",
                    name="region",
                ),
                migrations.RemoveField(
                    model_name="tenantnetwork",
                    name="tenant",
                ),
                migrations.DeleteModel(
                    name="StoragePool",
                ),
                migrations.DeleteModel(
                    name="OrphanReport",
                ),
                migrations.DeleteModel(
                    name="Host",
                ),
                migrations.DeleteModel(
                    name="Image",
                ),
                migrations.DeleteModel(
                    name="Operation",
                ),
                migrations.DeleteModel(
                    name="Port",
                ),
                migrations.DeleteModel(
                    name="Region",
                ),
                migrations.DeleteModel(
                    name="Zone",
                ),
                migrations.DeleteModel(
                    name="TenantNetwork",
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
        migrations.AlterField(
            model_name="instance",
            name="task_state",
            field=models.CharField(
                blank=True,
                choices=[
                    ("spawning", "Spawning"),
                    ("deleting", "Deleting"),
                    ("starting", "Starting"),
                    ("stopping", "Stopping"),
                    ("rebooting", "Rebooting"),
                    ("rebuilding", "Rebuilding"),
                    ("snapshotting", "Snapshotting"),
                    ("resizing", "Resizing"),
                    ("confirming", "Confirming Resize"),
                    ("reverting_resize", "Reverting Resize"),
                ],
                max_length=16,
                null=True,
            ),
        ),
    ]
