"""The images models, which lived in `compute` until the split into apps by domain: their
tables stay where they are (db_table), so this migration only takes them over in Django's
state; compute's 0014 then lets go of them (docs/decisions.md, "Apps by domain")."""

import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("compute", "0013_port_device_id_required"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Image",
                    fields=[
                        (
                            "id",
                            models.UUIDField(
                                default=uuid.uuid4,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("name", models.CharField(max_length=128)),
                        (
                            "disk_format",
                            models.CharField(
                                choices=[("qcow2", "Qcow2"), ("raw", "Raw")], max_length=16
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("saving", "Saving"),
                                    ("active", "Active"),
                                    ("error", "Error"),
                                    ("deleted", "Deleted"),
                                ],
                                default="queued",
                                max_length=16,
                            ),
                        ),
                        (
                            "visibility",
                            models.CharField(
                                choices=[("private", "Private"), ("public", "Public")],
                                default="private",
                                max_length=16,
                            ),
                        ),
                        ("min_disk_gb", models.PositiveIntegerField(default=0)),
                        ("min_ram_mb", models.PositiveIntegerField(default=0)),
                        (
                            "protected",
                            models.BooleanField(
                                default=False, help_text="A protected image cannot be deleted."
                            ),
                        ),
                        ("size_bytes", models.BigIntegerField(blank=True, null=True)),
                        ("virtual_size_bytes", models.BigIntegerField(blank=True, null=True)),
                        ("checksum_sha256", models.CharField(blank=True, max_length=64)),
                        ("error_message", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("created_by_id", models.BigIntegerField(blank=True, null=True)),
                        (
                            "source_instance_id",
                            models.UUIDField(
                                blank=True,
                                help_text="The instance a snapshot image was taken from.",
                                null=True,
                            ),
                        ),
                        (
                            "tenant",
                            models.ForeignKey(
                                blank=True,
                                help_text="The owner of a private image; empty for public images (the platform's).",
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="images",
                                to="tenants.tenant",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "compute_image",
                        "indexes": [
                            models.Index(
                                fields=["tenant", "-created_at"], name="image_tenant_recent"
                            ),
                            models.Index(
                                fields=["visibility", "status"], name="image_visibility_status"
                            ),
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(
                                    models.Q(("tenant__isnull", False), ("visibility", "private")),
                                    models.Q(("tenant__isnull", True), ("visibility", "public")),
                                    _connector="OR",
                                ),
                                name="image_public_iff_platform_owned",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
