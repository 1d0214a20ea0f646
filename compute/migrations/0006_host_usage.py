"""Per-host usage columns kept by the scheduler under the host row lock (docs/benchmarks.md,
"Scheduler"), initialised from the existing Allocation rows."""

from django.db import migrations, models
from django.db.models import Sum


def initialise_usage(apps, schema_editor):
    Allocation = apps.get_model("compute", "Allocation")
    Host = apps.get_model("compute", "Host")
    sums = Allocation.objects.values("host_id").annotate(
        vcpus=Sum("vcpus"), memory_mb=Sum("memory_mb"), disk_gb=Sum("disk_gb")
    )
    for row in sums:
        Host.objects.filter(pk=row["host_id"]).update(
            allocated_vcpus=row["vcpus"] or 0,
            allocated_memory_mb=row["memory_mb"] or 0,
            allocated_disk_gb=row["disk_gb"] or 0,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0005_bench_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="host",
            name="allocated_vcpus",
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name="host",
            name="allocated_memory_mb",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="host",
            name="allocated_disk_gb",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddConstraint(
            model_name="host",
            constraint=models.CheckConstraint(
                condition=models.Q(("allocated_vcpus__gte", 0))
                & models.Q(("allocated_memory_mb__gte", 0))
                & models.Q(("allocated_disk_gb__gte", 0)),
                name="host_allocated_nonnegative",
            ),
        ),
        migrations.RunPython(initialise_usage, migrations.RunPython.noop),
    ]
