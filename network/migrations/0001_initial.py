"""The network models, which lived in `compute` until the split into apps by domain: their
tables stay where they are (db_table), so this migration only takes them over in Django's
state; compute's 0014 then lets go of them (docs/decisions.md, "Apps by domain")."""

import django.db.models.deletion
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
                    name="TenantNetwork",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("cidr", models.CharField(max_length=18, unique=True)),
                        ("next_host_index", models.PositiveIntegerField(default=0)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "tenant",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="network",
                                to="tenants.tenant",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "compute_tenantnetwork",
                    },
                ),
                migrations.CreateModel(
                    name="Port",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "device_id",
                            models.UUIDField(
                                db_index=True, help_text="The instance the port is bound to."
                            ),
                        ),
                        ("mac", models.CharField(max_length=17, unique=True)),
                        ("ip", models.GenericIPAddressField(protocol="IPv4")),
                        (
                            "network",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="ports",
                                to="network.tenantnetwork",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "compute_port",
                        "constraints": [
                            models.UniqueConstraint(fields=("network", "ip"), name="port_unique_ip")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
