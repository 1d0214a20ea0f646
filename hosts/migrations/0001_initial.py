"""The hosts models, which lived in `compute` until the split into apps by domain: their
tables stay where they are (db_table), so this migration only takes them over in Django's
state; compute's 0014 then lets go of them (docs/decisions.md, "Apps by domain")."""

import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("compute", "0013_port_device_id_required"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Region",
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
                        ("name", models.SlugField(max_length=32, unique=True)),
                        ("description", models.CharField(blank=True, max_length=200)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "compute_region",
                        "ordering": ["name"],
                    },
                ),
                migrations.CreateModel(
                    name="Zone",
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
                        ("name", models.SlugField(max_length=32, unique=True)),
                        (
                            "site",
                            models.CharField(
                                help_text="Datacenter operator and building.", max_length=100
                            ),
                        ),
                        ("city", models.CharField(max_length=100)),
                        ("country", models.CharField(max_length=2)),
                        ("jurisdiction", models.CharField(max_length=2)),
                        (
                            "certifications",
                            models.JSONField(
                                blank=True,
                                default=list,
                                help_text='e.g. ["SecNumCloud", "HDS", "ISO 27001"]',
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "region",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="zones",
                                to="hosts.region",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "compute_zone",
                        "ordering": ["name"],
                    },
                ),
                migrations.CreateModel(
                    name="Host",
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
                        ("name", models.CharField(max_length=63, unique=True)),
                        ("libvirt_uri", models.CharField(max_length=255)),
                        ("ssh_host", models.CharField(blank=True, max_length=255)),
                        ("ssh_port", models.PositiveIntegerField(default=22)),
                        ("ssh_username", models.CharField(default="root", max_length=64)),
                        ("ssh_host_key_fingerprint", models.CharField(blank=True, max_length=100)),
                        ("storage_root", models.CharField(max_length=255)),
                        (
                            "domain_type",
                            models.CharField(
                                choices=[
                                    ("kvm", "Kvm"),
                                    ("qemu", "qemu (TCG, software emulation)"),
                                    ("test", "test (libvirt's in-process fake, for tests)"),
                                ],
                                max_length=8,
                            ),
                        ),
                        ("arch", models.CharField(blank=True, max_length=16)),
                        ("cpu_model", models.CharField(blank=True, max_length=100)),
                        ("cpus", models.PositiveIntegerField(default=0)),
                        ("memory_mb", models.PositiveIntegerField(default=0)),
                        ("disk_gb", models.PositiveIntegerField(default=0)),
                        ("libvirt_version", models.CharField(blank=True, max_length=32)),
                        ("hypervisor_version", models.CharField(blank=True, max_length=32)),
                        ("domain_types", models.JSONField(blank=True, default=list)),
                        ("reserved_cpus", models.PositiveIntegerField(default=0)),
                        ("reserved_memory_mb", models.PositiveIntegerField(default=512)),
                        ("reserved_disk_gb", models.PositiveIntegerField(default=0)),
                        ("cpu_allocation_ratio", models.FloatField(default=4.0)),
                        ("ram_allocation_ratio", models.FloatField(default=1.0)),
                        ("disk_allocation_ratio", models.FloatField(default=1.0)),
                        ("allocated_vcpus", models.IntegerField(default=0)),
                        ("allocated_memory_mb", models.BigIntegerField(default=0)),
                        ("allocated_disk_gb", models.BigIntegerField(default=0)),
                        (
                            "state",
                            models.CharField(
                                choices=[
                                    ("enabled", "Enabled"),
                                    ("disabled", "Disabled"),
                                    ("maintenance", "Maintenance"),
                                    ("down", "Down"),
                                ],
                                default="enabled",
                                max_length=12,
                            ),
                        ),
                        ("state_reason", models.CharField(blank=True, max_length=255)),
                        ("last_heartbeat_at", models.DateTimeField(blank=True, null=True)),
                        ("last_heartbeat_error", models.CharField(blank=True, max_length=500)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "zone",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="hosts",
                                to="hosts.zone",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "compute_host",
                        "ordering": ["name"],
                    },
                ),
                migrations.CreateModel(
                    name="OrphanReport",
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
                            "kind",
                            models.CharField(
                                choices=[("domain", "Domain"), ("volume", "Volume")], max_length=12
                            ),
                        ),
                        ("name", models.CharField(max_length=255)),
                        ("details", models.JSONField(blank=True, default=dict)),
                        ("first_seen_at", models.DateTimeField(auto_now_add=True)),
                        ("last_seen_at", models.DateTimeField(auto_now=True)),
                        (
                            "host",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="orphans",
                                to="hosts.host",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "compute_orphanreport",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("host", "kind", "name"), name="orphan_unique"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="StoragePool",
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
                            "role",
                            models.CharField(
                                choices=[
                                    ("images", "Images"),
                                    ("instances", "Instances"),
                                    ("volumes", "Volumes"),
                                ],
                                max_length=12,
                            ),
                        ),
                        (
                            "backend",
                            models.CharField(
                                choices=[("dir", "Dir"), ("lvm", "Lvm"), ("rbd", "Rbd")],
                                default="dir",
                                max_length=8,
                            ),
                        ),
                        (
                            "name",
                            models.CharField(
                                help_text="The libvirt pool name on the host.", max_length=64
                            ),
                        ),
                        ("path", models.CharField(max_length=255)),
                        ("capacity_bytes", models.BigIntegerField(default=0)),
                        ("available_bytes", models.BigIntegerField(default=0)),
                        (
                            "host",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="storage_pools",
                                to="hosts.host",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "compute_storagepool",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("host", "role"), name="storagepool_unique_role"
                            ),
                            models.UniqueConstraint(
                                fields=("host", "name"), name="storagepool_unique_name"
                            ),
                        ],
                    },
                ),
                migrations.AddConstraint(
                    model_name="host",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("cpu_allocation_ratio__gt", 0),
                            ("ram_allocation_ratio__gt", 0),
                            ("disk_allocation_ratio__gt", 0),
                        ),
                        name="host_allocation_ratios_positive",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="host",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("allocated_vcpus__gte", 0),
                            ("allocated_memory_mb__gte", 0),
                            ("allocated_disk_gb__gte", 0),
                        ),
                        name="host_allocated_nonnegative",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
