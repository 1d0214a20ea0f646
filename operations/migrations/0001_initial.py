"""The operations models, which lived in `compute` until the split into apps by domain: their
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
                    name="Operation",
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
                        ("action", models.CharField(max_length=32)),
                        ("target_type", models.CharField(max_length=32)),
                        ("target_id", models.UUIDField(db_index=True)),
                        (
                            "host_name",
                            models.CharField(help_text="Whose queue runs it.", max_length=63),
                        ),
                        ("actor_id", models.BigIntegerField(blank=True, null=True)),
                        ("actor_label", models.CharField(blank=True, max_length=150)),
                        ("request_id", models.CharField(blank=True, max_length=128)),
                        ("params", models.JSONField(blank=True, default=dict)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("succeeded", "Succeeded"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("steps", models.JSONField(blank=True, default=list)),
                        ("progress", models.PositiveSmallIntegerField(default=0)),
                        ("error", models.TextField(blank=True)),
                        ("lease_owner", models.CharField(blank=True, max_length=100)),
                        ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                        ("enqueued_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "tenant",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="operations",
                                to="tenants.tenant",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "compute_operation",
                        "indexes": [
                            models.Index(
                                fields=["tenant", "-created_at"], name="operation_tenant_recent"
                            ),
                            models.Index(fields=["status", "enqueued_at"], name="operation_sweep"),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
